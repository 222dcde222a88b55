import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { sweepOrphans } from '../../registry/sweep.ts';
import { errorOf, publish, published, registerBase, snapshot, toyConfig, vlmAdapter } from '../helpers/adapters.ts';
import { BACKENDS, FaultInjectingBlobs, startRegistry, type TestRegistry } from '../helpers/registry.ts';

/**
 * Publishing is atomic: a failure at any point (storage, the database write, a crash in between)
 * leaves no visible half version, no orphan row, and (after cleanup) no orphan blob.
 */

/** Fails the Nth put from now on (the one fault we cannot cause for real), then none. */
function failNthPut(blobs: FaultInjectingBlobs, n: number): void {
  let puts = 0;
  blobs.failPut = () => {
    if (++puts !== n) return undefined;
    blobs.failPut = () => undefined;
    return new Error('storage unavailable');
  };
}

describe.each(BACKENDS)('atomic publishing (%s)', (backend) => {
  let reg: TestRegistry;
  let flaky: FaultInjectingBlobs;
  const config = toyConfig();

  beforeAll(async () => {
    // The 500s below are logged by the app; keep the test output readable.
    vi.spyOn(console, 'error').mockImplementation(() => {});
    reg = await startRegistry(backend, { wrapBlobs: (b) => (flaky = new FaultInjectingBlobs(b)) });
    await registerBase(reg, 'toy');
    await published(reg, 'kept', { base: 'toy@1', alias: 'production' }, vlmAdapter(config, { seed: 1 }));
  });
  afterAll(async () => {
    vi.restoreAllMocks();
    await reg?.close();
  });

  it('a storage failure after the first file leaves nothing behind', async () => {
    const before = await snapshot(reg);
    failNthPut(flaky, 2); // adapter_config.json is stored, the weights fail
    const res = await publish(reg, 'fresh', { base: 'toy@1', alias: 'production' }, vlmAdapter(config, { seed: 2 }));
    expect(res.status).toBe(500);
    expect((await errorOf(res)).type).toBe('server_error');
    expect(await snapshot(reg)).toEqual(before);
    expect((await reg.fetch('/v1/adapters/fresh')).status).toBe(404);
  });

  it('a failing database write (inside the batch) leaves no adapter, version, alias or blob', async () => {
    const before = await snapshot(reg);
    // A real failure of the one atomic write: the version insert aborts after the adapter insert ran.
    await reg.raw(
      `create trigger test_fail before insert on adapter_versions begin select raise(abort, 'disk full'); end`,
    );
    try {
      const res = await publish(reg, 'fresh', { base: 'toy@1', alias: 'production' }, vlmAdapter(config, { seed: 3 }));
      expect(res.status).toBe(500);
      const again = await publish(reg, 'kept', { base: 'toy@1', alias: 'production' }, vlmAdapter(config, { seed: 4 }));
      expect(again.status).toBe(500);
    } finally {
      await reg.raw('drop trigger test_fail');
    }
    expect(await snapshot(reg)).toEqual(before);
    expect((await reg.fetch('/v1/adapters/kept/aliases/production').then((r) => r.json())).version).toBe(1);
  });

  it('blobs shared with a committed version survive a failed publish', async () => {
    const files = vlmAdapter(config, { seed: 1 }); // same bytes as kept@1
    const before = await snapshot(reg);
    failNthPut(flaky, 2);
    expect((await publish(reg, 'copy', { base: 'toy@1' }, files)).status).toBe(500);
    expect(await snapshot(reg)).toEqual(before);
    const dl = await reg.fetch('/v1/adapters/kept/versions/1/files/adapter.safetensors');
    expect(dl.status).toBe(200);
    await dl.arrayBuffer();
  });

  it('a crash between storing and committing leaves only unreferenced blobs, which the sweeper removes', async () => {
    const before = await snapshot(reg);
    // What a crashed publish leaves: content in the store that no row references.
    const orphan = await reg.blobs.put(new TextEncoder().encode('half-published weights'));
    expect((await snapshot(reg)).blobs).toContain(orphan.sha256);
    // In-flight uploads are safe: nothing younger than the grace period is touched.
    expect(await sweepOrphans(reg.registry.db, reg.blobs)).toEqual({ blobs: 0, partial: 0 });
    const swept = await sweepOrphans(reg.registry.db, reg.blobs, { now: new Date(Date.now() + 2 * 3600_000) });
    expect(swept.blobs).toBe(1);
    expect(await snapshot(reg)).toEqual(before);
    const dl = await reg.fetch('/v1/adapters/kept/versions/1/files/adapter.safetensors');
    expect(dl.status).toBe(200);
    await dl.arrayBuffer();
  });
});
