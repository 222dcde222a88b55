import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient } from '../../registry/client.ts';
import { publishFolder } from '../../registry/local.ts';
import { errorOf, publishForm, registerBase, toyConfig, vlmAdapter, type AdapterFiles } from '../helpers/adapters.ts';
import { BACKENDS, startRegistry, type TestRegistry } from '../helpers/registry.ts';

/** A publish retried with its Idempotency-Key makes one version, however many replies were lost. */
describe.each(BACKENDS)('idempotent publish (%s)', (backend) => {
  let reg: TestRegistry;
  const config = toyConfig();

  beforeAll(async () => {
    reg = await startRegistry(backend);
    await registerBase(reg, 'toy');
  });
  afterAll(async () => {
    await reg?.close();
  });

  const publishWithKey = (adapter: string, files: AdapterFiles, key: string, fields = {}, bearer?: string) =>
    reg.fetch(`/v1/adapters/${adapter}/versions`, {
      method: 'POST',
      body: publishForm({ base: 'toy@1', ...fields }, files),
      headers: { 'idempotency-key': key },
      key: bearer,
    });

  async function versionsOf(adapter: string): Promise<number[]> {
    const body = await (await reg.fetch(`/v1/adapters/${adapter}/versions`)).json();
    return body.data.map((v: { version: number }) => v.version);
  }

  it('a repeated request answers the first version, with the same status and body', async () => {
    const files = vlmAdapter(config, { seed: 1 });
    const first = await publishWithKey('idem', files, 'key-1', { alias: 'production' });
    expect(first.status).toBe(201);
    const again = await publishWithKey('idem', files, 'key-1', { alias: 'production' });
    expect(again.status).toBe(201);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(await again.json()).toEqual(await first.json());
    expect(await versionsOf('idem')).toEqual([1]);
    // Without a key (or with another), the same content is a new version, as before.
    expect((await publishWithKey('idem', files, 'key-2')).status).toBe(201);
    expect(await versionsOf('idem')).toEqual([2, 1]);
  });

  it('concurrent requests with one key make one version', async () => {
    const files = vlmAdapter(config, { seed: 2 });
    const answers = await Promise.all([1, 2, 3].map(() => publishWithKey('idem-race', files, 'race-key')));
    expect(answers.map((r) => r.status)).toEqual([201, 201, 201]);
    expect(new Set(await Promise.all(answers.map(async (r) => (await r.json()).version)))).toEqual(new Set([1]));
    expect(await versionsOf('idem-race')).toEqual([1]);
  });

  it('a key reused for a different request is a 422 naming the key', async () => {
    await publishWithKey('idem-other', vlmAdapter(config, { seed: 3 }), 'used-once');
    const otherContent = await publishWithKey('idem-other', vlmAdapter(config, { seed: 4 }), 'used-once');
    expect(otherContent.status).toBe(422);
    const error = await errorOf(otherContent);
    expect(error.code).toBe('idempotency_key_reused');
    expect(error.message).toMatch(/Idempotency-Key "used-once" was already used for a different publish request/);
    const otherAdapter = await publishWithKey('idem-else', vlmAdapter(config, { seed: 3 }), 'used-once');
    expect(otherAdapter.status).toBe(422);
    const otherFields = await publishWithKey('idem-other', vlmAdapter(config, { seed: 3 }), 'used-once', {
      task: 'x',
    });
    expect(otherFields.status).toBe(422);
    expect(await versionsOf('idem-other')).toEqual([1]);
    expect((await reg.fetch('/v1/adapters/idem-else')).status).toBe(404);
  });

  it('keys are per tenant', async () => {
    const files = vlmAdapter(config, { seed: 5 });
    const other = await reg.key('globex', ['publish']);
    expect((await publishWithKey('acme-one', files, 'shared-key')).status).toBe(201);
    const res = await publishWithKey('globex-one', files, 'shared-key', {}, other);
    expect(res.status).toBe(201);
    expect((await res.json()).adapter).toBe('globex-one');
  });

  it('keys are bounded', async () => {
    const files = vlmAdapter(config, { seed: 6 });
    const res = await publishWithKey('idem-long', files, 'k'.repeat(256));
    expect(res.status).toBe(400);
    expect((await errorOf(res)).message).toMatch(/idempotency-key.*1-255 visible ASCII/i);
  });

  it('the client retries with the same key when the reply is lost, and one version results', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'versa-idem-'));
    try {
      for (const f of vlmAdapter(config, { seed: 7 })) writeFileSync(join(dir, f.name), f.bytes);
      const keys: string[] = [];
      let lost = 0;
      const client = new RegistryClient({
        url: reg.url,
        key: reg.adminKey,
        retryDelaysMs: [0, 0],
        // The server commits, then the connection drops before the client reads the reply.
        fetch: async (url, init) => {
          keys.push(new Headers(init?.headers).get('idempotency-key') ?? '');
          const res = await fetch(url, init);
          if (lost++ === 0) {
            await res.body?.cancel();
            throw new TypeError('fetch failed', { cause: new Error('other side closed') });
          }
          return res;
        },
      });
      const r = await publishFolder(client, dir, 'idem-client', { base: 'toy@1' });
      expect(r.version).toBe(1);
      expect(keys).toHaveLength(2);
      expect(keys[0]).toMatch(/^versa-publish-/);
      expect(keys[1]).toBe(keys[0]);
      expect(await versionsOf('idem-client')).toEqual([1]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the client does not retry a 4xx', async () => {
    let calls = 0;
    const client = new RegistryClient({
      url: reg.url,
      key: reg.adminKey,
      retryDelaysMs: [0, 0],
      fetch: (url, init) => (calls++, fetch(url, init)),
    });
    const parts = [{ field: 'base', value: 'nope@1' }];
    await expect(client.upload('/v1/adapters/x/versions', parts, { idempotencyKey: 'k4' })).rejects.toThrow(/400/);
    expect(calls).toBe(1);
  });
});
