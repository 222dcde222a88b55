import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Hex } from '../../registry/hash.ts';
import { adapterFolderFiles, describeLocalModel } from '../../registry/local.ts';
import { published } from '../helpers/adapters.ts';
import { fixture } from '../helpers/fixtures.ts';
import { BACKENDS, startRegistry, type TestRegistry } from '../helpers/registry.ts';

/** The adapters in test/fixtures publish, and download byte-identical with matching sha256. */

const BASES = [
  { name: 'stories260k-hf', path: 'stories260k/hf' },
  { name: 'tiny-gpt2', path: 'tiny-gpt2' },
];
const ADAPTERS = [
  { name: 'vlm-max', dir: 'stories260k/adapters/vlm-max', base: 'stories260k-hf@1', kind: 'vlm', params: 11_344 },
  { name: 'lora-max', dir: 'stories260k/adapters/lora-max', base: 'stories260k-hf@1', kind: 'lora', params: 18_640 },
  { name: 'vglm-a', dir: 'tiny-gpt2/adapters/vglm-a', base: 'tiny-gpt2@1', kind: 'vlm' },
  { name: 'vglm-b', dir: 'tiny-gpt2/adapters/vglm-b', base: 'tiny-gpt2@1', kind: 'vlm' },
  { name: 'lora-c', dir: 'tiny-gpt2/adapters/lora-c', base: 'tiny-gpt2@1', kind: 'lora' },
];

describe.each(BACKENDS)('fixture adapters (%s)', (backend) => {
  let reg: TestRegistry;

  beforeAll(async () => {
    reg = await startRegistry(backend);
    for (const b of BASES) {
      const input = await describeLocalModel(fixture(b.path));
      const res = await reg.fetch(`/v1/models/${b.name}/versions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(input),
      });
      expect(res.status).toBe(201);
    }
  });
  afterAll(() => reg?.close());

  it.each(ADAPTERS)('$name publishes and downloads byte-identical', async (a) => {
    const local = adapterFolderFiles(fixture(a.dir)).map((f) => ({
      name: f.name,
      bytes: new Uint8Array(readFileSync(f.path)),
    }));
    const r = await published(reg, a.name, { base: a.base, alias: 'production' }, local);
    expect(r).toMatchObject({ version: 1, base: a.base, kind: a.kind });
    if (a.params) expect(r.params).toBe(a.params);
    expect(r.params_pct_of_base).toBeGreaterThan(0);
    expect(r.params_pct_of_base).toBeLessThan(10);
    for (const f of local) {
      const entry = r.files.find((x) => x.name === f.name)!;
      expect(entry.sha256).toBe(await sha256Hex(f.bytes));
      const res = await reg.fetch(`/v1/adapters/${a.name}/versions/1/files/${f.name}`);
      expect(res.status).toBe(200);
      const got = new Uint8Array(await res.arrayBuffer());
      expect(Buffer.from(got).equals(Buffer.from(f.bytes))).toBe(true);
      expect(await sha256Hex(got)).toBe(entry.sha256);
      expect(res.headers.get('x-versa-sha256')).toBe(entry.sha256);
    }
    const resolved = await (await reg.fetch(`/v1/resolve?model=${a.name}`)).json();
    expect(resolved).toMatchObject({
      adapter: a.name,
      version: 1,
      via: 'default',
      alias: 'production',
      sha256: r.sha256,
    });
  });

  it('a fixture adapter does not publish onto the other base', async () => {
    const local = adapterFolderFiles(fixture('tiny-gpt2/adapters/lora-c')).map((f) => ({
      name: f.name,
      bytes: new Uint8Array(readFileSync(f.path)),
    }));
    const res = await reg.fetch('/v1/adapters/misfit/versions', {
      method: 'POST',
      body: (() => {
        const form = new FormData();
        form.append('base', 'stories260k-hf@1');
        for (const f of local) form.append('file', new Blob([f.bytes as Uint8Array<ArrayBuffer>]), f.name);
        return form;
      })(),
    });
    expect(res.status).toBe(400);
    expect((await res.json()).error.code).toBe('invalid_adapter');
  });
});
