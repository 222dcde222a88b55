import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import OpenAI from 'openai';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/compute.ts';
import { readJson } from '../helpers/fixtures.ts';
import { REPO_ROOT } from '../helpers/registry.ts';

/**
 * The README's "Local development with wrangler", line by line, as a user types it: `.dev.vars` from
 * the example, local D1 migrations, `wrangler dev` (workerd, D1 and R2 on disk), then the CLI with the
 * key from `.dev.vars`, a compute node with its read-only key from `versa keys create`, a publish and
 * a chat completion. Only the ports change (free ones for 8787 and 8788). It runs in a scratch copy
 * of the project (sources linked, wrangler.toml and .dev.vars.example copied) so that `.dev.vars` and
 * `.wrangler/` never touch the working tree.
 */

const run = promisify(execFile);

/** The shell lines of the README block: continuations joined, comment lines dropped. */
function readmeLines(): string[] {
  const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('#### Local development with wrangler'));
  const block = /```sh\n([\s\S]*?)```/.exec(section)?.[1];
  if (!block) throw new Error('README: no sh block under "Local development with wrangler"');
  return block
    .replace(/\\\n\s*/g, '')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
}

async function waitFor(url: string, process: ChildProcess, log: () => string): Promise<void> {
  for (;;) {
    if (process.exitCode !== null) throw new Error(`exited ${process.exitCode} before ${url} answered:\n${log()}`);
    const ok = await fetch(url).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return;
    await new Promise((r) => setTimeout(r, 250));
  }
}

describe('local Cloudflare development, as the README says', () => {
  const dir = mkdtempSync(join(tmpdir(), 'versa-cf-dev-'));
  const servers: ChildProcess[] = [];
  afterAll(async () => {
    for (const s of servers) {
      try {
        process.kill(-s.pid!, 'SIGTERM');
      } catch {
        // already gone
      }
    }
    await Promise.all(servers.map((s) => s.exitCode === null && new Promise((r) => s.once('exit', r))));
    rmSync(dir, { recursive: true, force: true });
  });

  it('.dev.vars is ignored by git, and .dev.vars.example names every secret the Worker needs', async () => {
    await run('git', ['check-ignore', '-q', '.dev.vars'], { cwd: REPO_ROOT });
    const example = readFileSync(join(REPO_ROOT, '.dev.vars.example'), 'utf8');
    for (const name of ['VERSA_API_KEY', 'VERSA_COMPUTE_TOKEN', 'COMPUTE_NODES'])
      expect(example).toMatch(new RegExp(`^${name}=`, 'm'));
  });

  it('runs the documented sequence: migrations, wrangler dev, node with its read key, publish, chat', async () => {
    const [edgePort, nodePort] = [await freePort(), await freePort()];
    const ports = (text: string) => text.replaceAll('8787', String(edgePort)).replaceAll('8788', String(nodePort));
    // dist/: the dashboard's bundle, which wrangler puts into the Worker (`npm install` built it, as for a user).
    for (const linked of [
      'package.json',
      'node_modules',
      'bin',
      'scripts',
      'src',
      'registry',
      'migrations',
      'test',
      'dist',
    ])
      symlinkSync(join(REPO_ROOT, linked), join(dir, linked));
    copyFileSync(join(REPO_ROOT, 'wrangler.toml'), join(dir, 'wrangler.toml'));
    writeFileSync(join(dir, '.dev.vars.example'), ports(readFileSync(join(REPO_ROOT, '.dev.vars.example'), 'utf8')));

    // Each line runs in bash with the environment the lines before it exported (one shell, as typed).
    const state = join(dir, '.shell-state');
    writeFileSync(state, '');
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME, TMPDIR: process.env.TMPDIR };
    Object.assign(env, { CI: 'true', NO_COLOR: '1', WRANGLER_SEND_METRICS: 'false' });
    Object.assign(env, { CLOUDFLARE_CF_FETCH_ENABLED: 'false', VERSA_HOME: join(dir, '.versa') });
    let output = '';
    for (const line of readmeLines().map(ports)) {
      const background = line.startsWith('npx wrangler dev') || line.endsWith('&');
      if (!background) {
        const { stdout } = await run('bash', ['-c', `set -eo pipefail; . ${state}; ${line}\nexport -p > ${state}`], {
          cwd: dir,
          env,
          maxBuffer: 1 << 24,
        }).catch((e) => {
          throw new Error(`README line failed: ${line}\n${e.message}\n${e.stdout}\n${e.stderr}`);
        });
        output = stdout;
        continue;
      }
      const server = spawn('bash', ['-c', `. ${state}; exec ${line.replace(/&$/, '')}`], {
        cwd: dir,
        env,
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      servers.push(server);
      let log = '';
      server.stdout!.on('data', (d) => (log += d));
      server.stderr!.on('data', (d) => (log += d));
      const port = /--port (\d+)/.exec(line)?.[1];
      await waitFor(
        `http://127.0.0.1:${port}${line.includes('versa compute') ? '/readyz' : '/healthz'}`,
        server,
        () => log,
      );
    }

    // The last line, curl: a chat completion through the adapter.
    const completion = JSON.parse(output);
    expect(completion).toMatchObject({ object: 'chat.completion', model: expect.stringMatching(/^vlm-max/) });
    expect(completion.choices[0].message.content).toEqual(expect.any(String));

    const exported = readFileSync(state, 'utf8');
    const valueOf = (name: string) => new RegExp(`^declare -x ${name}="([^"]*)"$`, 'm').exec(exported)?.[1];
    const [adminKey, nodeKey] = [valueOf('VERSA_API_KEY'), valueOf('VERSA_REGISTRY_KEY')];
    expect(adminKey).toMatch(/^vsk_[0-9a-f]{48}$/);
    // The node's key, made by `versa keys create --scopes read`: read-only, of the admin key's tenant.
    const whoami = await fetch(`http://127.0.0.1:${edgePort}/v1/whoami`, {
      headers: { authorization: `Bearer ${nodeKey}` },
    });
    expect(await whoami.json()).toMatchObject({ key_name: 'node-1', tenant: 'default', scopes: ['read'] });

    // The adapter is really applied: its golden greedy text, through the official client.
    const g = readJson('stories260k/adapters/vlm-max/expected/greedy.json').prompts[2];
    const openai = new OpenAI({ baseURL: `http://127.0.0.1:${edgePort}/v1`, apiKey: adminKey, maxRetries: 0 });
    const r = await openai.chat.completions.create({
      model: 'vlm-max',
      messages: [{ role: 'user', content: g.prompt_text }],
      temperature: 0,
      max_tokens: 120,
    });
    expect(r.choices[0].message.content).toBe(g.greedy_text);
  }, 300_000);
});
