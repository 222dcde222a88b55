import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorOf, publish, published, registerBase, toyConfig, vlmAdapter } from '../helpers/adapters.ts';
import { BACKENDS, startRegistry, type TestRegistry } from '../helpers/registry.ts';

/**
 * Another tenant's private adapter name answers a publish exactly as a free name does until the
 * version would be committed: no request that creates nothing can tell whether the name exists.
 */
describe.each(BACKENDS)('private adapter names (%s)', (backend) => {
  let reg: TestRegistry;
  let rival: string;
  const config = toyConfig();
  beforeAll(async () => {
    reg = await startRegistry(backend);
    await registerBase(reg, 'toy');
    await published(reg, 'secret', { base: 'toy@1' }, vlmAdapter(config));
    rival = await reg.key('rival', ['read', 'publish']);
  });
  afterAll(() => reg?.close());

  it('a publish that cannot succeed gets the same error for a private name as for a free one', async () => {
    const bodies: Array<[string, Record<string, string>, ReturnType<typeof vlmAdapter>]> = [
      ['no files', { base: 'toy@1' }, []],
      ['an unknown base', { base: 'nothing@1' }, vlmAdapter(config)],
      ['an adapter that does not fit its base', { base: 'toy@1' }, vlmAdapter(toyConfig({ hiddenSize: 32 }))],
    ];
    for (const [what, fields, files] of bodies) {
      const taken = await errorOf(await publish(reg, 'secret', fields, files, rival));
      const free = await errorOf(await publish(reg, 'free-name', fields, files, rival));
      expect([what, taken.status]).toEqual([what, free.status]);
      expect(taken).toEqual({ ...free, message: free.message.replaceAll('free-name', 'secret') });
    }
  });

  it('only a publish that would create the name learns it is taken; the owner keeps it', async () => {
    const res = await publish(reg, 'secret', { base: 'toy@1' }, vlmAdapter(config, { seed: 2 }), rival);
    expect(await errorOf(res)).toMatchObject({ status: 404, code: 'adapter_not_found' });
    const versions = await (await reg.fetch('/v1/adapters/secret/versions')).json();
    expect(versions.data.map((v: { version: number }) => v.version)).toEqual([1]);
    expect((await published(reg, 'free-name', { base: 'toy@1' }, vlmAdapter(config), rival)).version).toBe(1);
  });
});
