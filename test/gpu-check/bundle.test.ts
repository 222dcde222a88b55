import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const REPO_ROOT = resolve(import.meta.dirname, '../..');
const LIMIT = 60 * 1024 * 1024;

function run(file: string, args: string[], env?: NodeJS.ProcessEnv) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((done) => {
    execFile(file, args, { cwd: REPO_ROOT, env, maxBuffer: 1 << 24 }, (e, stdout, stderr) =>
      done({ code: e ? (typeof e.code === 'number' ? e.code : 1) : 0, stdout, stderr }),
    );
  });
}

function bytesUnder(dir: string): number {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .reduce((sum, e) => sum + statSync(join(e.parentPath, e.name)).size, 0);
}

/**
 * `npm run gpu:bundle` (scripts/gpu-check/bundle.sh) and the bundle's run.sh, as on a GPU host but
 * with --ep cpu: built without the Debian packages, then run with an empty environment (only
 * /usr/bin:/bin on the PATH), so it must bring its own Node and CLI, and the goldens must be exact.
 */
describe('the GPU check bundle', () => {
  const work = mkdtempSync(join(tmpdir(), 'versa-gpu-bundle-'));
  const bundle = join(work, 'bundle');
  const results = join(work, 'results');
  const clean = { PATH: '/usr/bin:/bin' };

  beforeAll(async () => {
    const built = await run('bash', ['scripts/gpu-check/bundle.sh', '--out', bundle, '--no-debs']);
    expect(built.code, built.stderr).toBe(0);
    expect(built.stdout).toContain(`${bundle} (`);
  }, 600_000);
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('stays within 60 MiB with its entry, Node and the CLI, and leaves no temporary folder', () => {
    expect(bytesUnder(bundle)).toBeLessThanOrEqual(LIMIT);
    for (const f of ['run.sh', 'node.xz', 'app.tar.xz', 'tools/make-llama.mjs', 'tools/tok32k.bin'])
      expect(statSync(join(bundle, f)).size, f).toBeGreaterThan(0);
    expect(readdirSync(work)).toEqual(['bundle']);
  });

  it('runs the goldens with --ep cpu in an empty environment, on its own Node, and records them', async () => {
    const r = await run('bash', [join(bundle, 'run.sh'), '--ep', 'cpu', '--results', results], clean);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const records = readFileSync(join(results, 'results.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    const host = records.find((x) => x.check === 'host');
    expect(host.node).toBe(join(bundle, 'work/node/bin/node'));
    const stories = records.find((x) => x.check === 'golden-stories260k');
    expect(stories).toMatchObject({ ep: 'cpu', exact: 199, of: 199, pass: true });
    const gpt2 = records.find((x) => x.check === 'golden-tiny-gpt2');
    expect(gpt2).toMatchObject({ ep: 'cpu', pass: true });
    expect(gpt2.rows).toHaveLength(2);
    expect(readFileSync(join(results, 'results.txt'), 'utf8')).toContain('golden-stories260k on cpu: pass');
  }, 300_000);

  it('refuses an execution provider it cannot check, and an unknown option, in one line', async () => {
    const ep = await run('bash', [join(bundle, 'run.sh'), '--ep', 'cuda'], clean);
    expect(ep.code).toBe(2);
    expect(ep.stderr.trim()).toBe("run.sh: --ep must be cpu or webgpu, not 'cuda'");
    const option = await run('bash', ['scripts/gpu-check/bundle.sh', '--fast']);
    expect(option.code).toBe(2);
    expect(option.stderr.trim()).toBe("gpu:bundle: unknown argument '--fast' (usage: --out DIR, --no-debs)");
  });
});
