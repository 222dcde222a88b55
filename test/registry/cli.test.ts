import { execFile, execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeSafetensors } from '../../src/engine/weights/safetensors.ts';
import { loraAdapter, toyConfig, vlmAdapter } from '../helpers/adapters.ts';
import { REPO_ROOT, startRegistry, type TestRegistry } from '../helpers/registry.ts';
import { freePort } from '../helpers/compute.ts';

/** The `versa` CLI against a running registry (Node backend, real HTTP, real processes). */

const run = promisify(execFile);

describe('versa CLI against a running registry', () => {
  let reg: TestRegistry;
  let work: string;
  let env: NodeJS.ProcessEnv;

  const versa = async (...args: string[]) => {
    try {
      const { stdout, stderr } = await run(process.execPath, [join(REPO_ROOT, 'bin/versa.js'), ...args], {
        env,
        cwd: work,
      });
      return { code: 0, stdout, stderr };
    } catch (e) {
      const err = e as { code: number; stdout: string; stderr: string };
      return { code: err.code, stdout: err.stdout, stderr: err.stderr };
    }
  };

  beforeAll(async () => {
    reg = await startRegistry('sqlite');
    work = mkdtempSync(join(tmpdir(), 'versa-cli-'));
    env = { ...process.env, VERSA_REGISTRY: reg.url, VERSA_API_KEY: reg.adminKey };
    // A local "Hugging Face" model folder: import reads config.json and hashes the files.
    const model = join(work, 'toy-model');
    mkdirSync(model);
    writeFileSync(
      join(model, 'config.json'),
      JSON.stringify({
        model_type: 'gpt2',
        architectures: ['GPT2LMHeadModel'],
        vocab_size: 64,
        n_embd: 16,
        n_layer: 2,
        n_head: 2,
        n_positions: 32,
      }),
    );
    writeFileSync(
      join(model, 'model.safetensors'),
      encodeSafetensors([{ name: 'x', shape: [4], data: new Float32Array(4) }]),
    );
    writeFileSync(join(model, 'tokenizer.json'), '{"model": {}}');
    for (const [dir, files] of [
      ['vlm', vlmAdapter(toyConfig())],
      ['vlm2', vlmAdapter(toyConfig(), { seed: 2 })],
      ['lora', loraAdapter(toyConfig())],
    ] as const) {
      mkdirSync(join(work, dir));
      for (const f of files) writeFileSync(join(work, dir, f.name), f.bytes);
    }
    writeFileSync(join(work, 'lora', 'README.md'), '# LoRA toy\n\nA card.');
  });
  afterAll(async () => {
    await reg?.close();
    rmSync(work, { recursive: true, force: true });
  });

  it('import registers a local model (new model, then a new version)', async () => {
    const first = await versa('import', join(work, 'toy-model'), '--name', 'toy');
    expect(first.stderr).toBe('');
    expect(first.stdout).toMatch(/^registered toy@1: gpt2, [\d,]+ params, 3 files/);
    const second = await versa('import', join(work, 'toy-model'), '--name', 'toy', '--json');
    const json = JSON.parse(second.stdout);
    expect(json).toMatchObject({ model: 'toy', version: 2, tokenizer: { kind: 'hf', file: 'tokenizer.json' } });
    expect(json.files.map((f: { name: string }) => f.name)).toEqual([
      'config.json',
      'model.safetensors',
      'tokenizer.json',
    ]);
  });

  it('publish uploads a VLM or PEFT folder, with an alias', async () => {
    const vlm = await versa(
      'publish',
      join(work, 'vlm'),
      '--name',
      'toy-vlm',
      '--base',
      'toy@1',
      '--alias',
      'production',
      '--tag',
      'a',
      '--tag',
      'b',
    );
    expect(vlm.code).toBe(0);
    expect(vlm.stdout).toMatch(
      new RegExp(
        /^published toy-vlm@1 on toy@1: vlm, 376 params \([\d.]+% of the base\), /.source +
          /.* sha256 [0-9a-f]{64} \(behavior [0-9a-f]{64}\); production -> 1\n$/.source,
      ),
    );
    const lora = await versa(
      'publish',
      join(work, 'lora'),
      '--name',
      'toy-lora',
      '--base',
      'toy@2',
      '--json',
      '--task',
      'qa',
    );
    expect(JSON.parse(lora.stdout)).toMatchObject({ adapter: 'toy-lora', version: 1, kind: 'lora', base: 'toy@2' });
    const card = await (await reg.fetch('/v1/adapters/toy-lora/versions/1')).json();
    expect(card.card).toBe('# LoRA toy\n\nA card.');
    expect(card.files.map((f: { name: string }) => f.name)).toEqual([
      'README.md',
      'adapter_config.json',
      'adapter_model.safetensors',
    ]);
    expect((await versa('publish', join(work, 'vlm2'), '--name', 'toy-vlm', '--base', 'toy@1')).stdout).toMatch(
      /^published toy-vlm@2/,
    );
  });

  it('models ls and adapters ls [--base]', async () => {
    const models = await versa('models', 'ls');
    expect(models.stdout.split('\n')[0]).toMatch(/^NAME\s+LATEST\s+OWNER$/);
    expect(models.stdout).toMatch(/\ntoy\s+2\s+acme\n/);
    const all = await versa('adapters', 'ls');
    expect(all.stdout).toMatch(/toy-lora\s+1\s+toy@2\s+lora/);
    expect(all.stdout).toMatch(/toy-vlm\s+2\s+toy@1\s+vlm\s+\S+ \S+\s+production=1/);
    const onBase = await versa('adapters', 'ls', '--base', 'toy@2', '--json');
    expect(JSON.parse(onBase.stdout).map((a: { name: string }) => a.name)).toEqual(['toy-lora']);
  });

  it('alias set / history / rollback', async () => {
    expect((await versa('alias', 'set', 'toy-vlm', 'production', '2', '--reason', 'better')).stdout).toBe(
      'toy-vlm@production: 1 -> 2\n',
    );
    expect((await versa('alias', 'rollback', 'toy-vlm', 'production')).stdout).toBe('toy-vlm@production: 2 -> 1\n');
    const history = await versa('alias', 'history', 'toy-vlm', 'production');
    const lines = history.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^WHEN\s+KIND\s+VERSIONS\s+BY\s+REASON$/);
    expect(lines.slice(1).map((l) => l.split(/\s{2,}/).slice(1, 4))).toEqual([
      ['rollback', '2 -> 1', 'admin (acme)'],
      ['move', '1 -> 2', 'admin (acme)'],
      ['set', '- -> 1', 'admin (acme)'],
    ]);
  });

  it('pull downloads a version and checks every sha256', async () => {
    const out = join(work, 'pulled');
    const r = await versa('pull', 'toy-vlm@production', '--out', out);
    expect(r.stdout).toMatch(/^pulled toy-vlm@1 \(2 files/);
    for (const name of ['adapter.safetensors', 'adapter_config.json']) {
      expect(readFileSync(join(out, name)).equals(readFileSync(join(work, 'vlm', name)))).toBe(true);
    }
  });

  it('publish refuses a symbolic link or a non-regular file in the folder, naming it', async () => {
    const outside = join(work, 'outside.txt');
    writeFileSync(outside, 'a file from outside the folder');
    const folder = (name: string, extra: (dir: string) => void) => {
      const dir = join(work, name);
      mkdirSync(dir);
      for (const f of vlmAdapter(toyConfig(), { seed: 21 })) writeFileSync(join(dir, f.name), f.bytes);
      extra(dir);
      return dir;
    };
    const cases: Array<[string, string, RegExp]> = [
      [
        'card-link',
        folder('card-link', (d) => symlinkSync(outside, join(d, 'README.md'))),
        /README\.md is a symbolic link/,
      ],
      [
        'template-link',
        folder('template-link', (d) => symlinkSync(outside, join(d, 'chat_template.jinja'))),
        /chat_template\.jinja is a symbolic link/,
      ],
      [
        'weights-link',
        folder('weights-link', (d) => {
          renameSync(join(d, 'adapter.safetensors'), join(work, 'weights-elsewhere.safetensors'));
          symlinkSync(join(work, 'weights-elsewhere.safetensors'), join(d, 'adapter.safetensors'));
        }),
        /adapter\.safetensors is a symbolic link/,
      ],
      [
        'card-fifo',
        folder('card-fifo', (d) => execFileSync('mkfifo', [join(d, 'README.md')])),
        /README\.md is not a regular file/,
      ],
      ['card-dir', folder('card-dir', (d) => mkdirSync(join(d, 'README.md'))), /README\.md is not a regular file/],
    ];
    for (const [name, dir, message] of cases) {
      const r = await versa('publish', dir, '--name', name, '--base', 'toy@1');
      expect(r.code, name).toBe(1);
      expect(r.stderr).toMatch(/^versa: error: .+\n$/);
      expect(r.stderr).toMatch(message);
      expect((await reg.fetch(`/v1/adapters/${name}`)).status).toBe(404);
    }
    // The same folder without the link publishes.
    rmSync(join(work, 'card-link', 'README.md'));
    expect((await versa('publish', join(work, 'card-link'), '--name', 'card-link', '--base', 'toy@1')).code).toBe(0);
  });

  it('errors are one line on stderr and exit 1', async () => {
    const cases = [
      await versa('publish', join(work, 'vlm'), '--name', 'bad/name', '--base', 'toy@1'),
      await versa('publish', join(work, 'vlm'), '--name', 'x', '--base', 'nope@1'),
      await versa('alias', 'set', 'toy-vlm', 'production', '99'),
      await versa('models', 'ls', '--key', 'vsk_not-a-real-key-000000000000'),
      await versa('models', 'ls', '--registry', 'http://127.0.0.1:9'),
      await versa('publish', join(work, 'nope'), '--name', 'x', '--base', 'toy@1'),
    ];
    for (const c of cases) {
      expect(c.code).toBe(1);
      expect(c.stderr).toMatch(/^versa: error: .+\n$/);
      expect(c.stdout).toBe('');
    }
    expect(cases[1].stderr).toMatch(/400: base model version nope@1 is not registered/);
    expect(cases[3].stderr).toMatch(/401/);
    expect(cases[4].stderr).toMatch(/cannot reach the registry/);
  });

  it('without VERSA_REGISTRY, registry commands use http://127.0.0.1:$PORT and name it when unreachable', async () => {
    const closed = await freePort();
    const { VERSA_REGISTRY: _unset, ...rest } = env;
    const saved = env;
    env = { ...rest, PORT: String(closed) };
    try {
      for (const r of [
        await versa('models', 'ls'),
        await versa('publish', join(work, 'vlm'), '--name', 'x', '--base', 'toy@1'),
      ]) {
        expect(r.code).toBe(1);
        expect(r.stderr).toMatch(new RegExp(`^versa: error: .*http://127\\.0\\.0\\.1:${closed}.*ECONNREFUSED`));
      }
      env = { ...rest, PORT: String(new URL(reg.url).port) };
      expect((await versa('models', 'ls')).code).toBe(0);
    } finally {
      env = saved;
    }
  });
});
