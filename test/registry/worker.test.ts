import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Hex } from '../../registry/hash.ts';
import { errorOf, publishForm, toyConfig, vlmAdapter, type AdapterFiles } from '../helpers/adapters.ts';
import { startWorkerRegistry, type TestWorker } from '../helpers/registry.ts';

/**
 * The Worker bundle itself in workerd (wrangler's local runtime): D1 batch, R2 with
 * crypto.DigestStream hashing and multipart uploads, and no node-only import anywhere.
 */
describe('the Cloudflare Worker (workerd, local D1 + R2)', () => {
  let worker: TestWorker;
  const config = toyConfig({ hiddenSize: 64, headDim: 32 });

  beforeAll(async () => {
    worker = await startWorkerRegistry();
  });
  afterAll(() => worker?.close());

  const upload = (adapter: string, fields: Record<string, string>, files: AdapterFiles) =>
    worker.fetch(`/v1/adapters/${adapter}/versions`, { method: 'POST', body: publishForm(fields, files) });

  it("installs VERSA_API_KEY as the operator's key, and serves /openapi.json", async () => {
    expect(await (await worker.fetch('/v1/whoami')).json()).toMatchObject({
      tenant: 'default',
      scopes: ['admin', 'operator'],
    });
    expect((await worker.fetch('/v1/whoami', { key: null })).status).toBe(401);
    const doc = await (await worker.fetch('/openapi.json', { key: null })).json();
    expect(doc.openapi).toBe('3.1.0');
    expect(doc.paths['/v1/adapters/{adapter}/versions'].post).toBeDefined();
  });

  it('publishes small and multi-part (> 8 MiB) adapters and downloads them byte-identical', async () => {
    const base = await worker.fetch('/v1/models/toy64/versions', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ architecture: 'gpt2', config, files: [] }),
    });
    expect(base.status).toBe(201);
    const small = vlmAdapter(config, { bottleneck: 8 });
    const big = vlmAdapter(config, { bottleneck: 9000, seed: 5 }); // ~9.2 MB of weights, 41x the base
    const bound = await worker.fetch('/v1/tenants/default', {
      method: 'PATCH',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ max_adapter_fraction: 50 }),
    });
    expect(bound.status).toBe(200);
    expect(big[1].bytes.length).toBeGreaterThan(9_000_000);
    for (const [name, files] of [
      ['small', small],
      ['big', big],
    ] as const) {
      const res = await upload(name, { base: 'toy64@1', alias: 'production' }, files);
      const body = await res.json();
      expect(res.status, JSON.stringify(body)).toBe(201);
      for (const f of files) {
        const dl = await worker.fetch(`/v1/adapters/${name}/versions/1/files/${f.name}`);
        expect(dl.status).toBe(200);
        const got = new Uint8Array(await dl.arrayBuffer());
        expect(got.length).toBe(f.bytes.length);
        expect(await sha256Hex(got)).toBe(await sha256Hex(f.bytes));
        expect(dl.headers.get('x-versa-sha256')).toBe(await sha256Hex(f.bytes));
      }
    }
  });

  it('refuses bad input with JSON errors and keeps versions immutable', async () => {
    const truncated = vlmAdapter(config, { seed: 9 });
    truncated[1] = { name: 'adapter.safetensors', bytes: truncated[1].bytes.slice(0, -4) };
    expect(await errorOf(await upload('small', { base: 'toy64@1' }, truncated))).toMatchObject({
      status: 400,
      code: 'invalid_safetensors',
    });
    expect(await errorOf(await upload('small', { base: 'toy64@1' }, vlmAdapter(toyConfig())))).toMatchObject({
      status: 400,
      code: 'invalid_adapter',
    });
    const yank = await worker.fetch('/v1/adapters/small/versions/1', {
      method: 'PATCH',
      headers: { 'content-type': 'application/json' },
      body: '{"status":"yanked"}',
    });
    expect(await errorOf(yank)).toMatchObject({ status: 409 });
    const v2 = await upload(
      'small',
      { base: 'toy64@1', alias: 'production' },
      vlmAdapter(config, { bottleneck: 8, seed: 2 }),
    );
    expect((await v2.json()).version).toBe(2);
    expect(
      (
        await worker.fetch('/v1/adapters/small/versions/1', {
          method: 'PATCH',
          headers: { 'content-type': 'application/json' },
          body: '{"status":"yanked"}',
        })
      ).status,
    ).toBe(200);
    expect(await errorOf(await worker.fetch('/v1/resolve?model=small@1'))).toMatchObject({
      status: 410,
      code: 'version_yanked',
    });
    expect(await (await worker.fetch('/v1/resolve?model=small')).json()).toMatchObject({ version: 2, via: 'default' });
  });
});
