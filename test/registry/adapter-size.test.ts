import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorOf, publish, published, registerBase, toyConfig, vlmAdapter } from '../helpers/adapters.ts';
import { BACKENDS, startRegistry, type TestRegistry } from '../helpers/registry.ts';

/**
 * An adapter is bounded relative to its base: by default 10 % of the base's parameters, per tenant
 * as the operator sets it (the toy base has 8,128 parameters; a bottleneck-16 VLM adapter 1,168).
 */
describe.each(BACKENDS)("an adapter's size bound (%s)", (backend) => {
  let reg: TestRegistry;
  let rival: string;
  const config = toyConfig();
  const json = (method: string, value: unknown) => ({
    method,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(value),
  });
  const setBound = async (tenant: string, fraction: number | null) => {
    const res = await reg.fetch(`/v1/tenants/${tenant}`, json('PATCH', { max_adapter_fraction: fraction }));
    expect(res.status).toBe(200);
    return res.json();
  };

  beforeAll(async () => {
    reg = await startRegistry(backend);
    rival = await reg.key('rival', ['publish']);
    await registerBase(reg, 'toy');
  });
  afterAll(() => reg?.close());

  it('refuses an adapter of 20x its base by default, naming the numbers', async () => {
    const mini = toyConfig({
      vocabSize: 16,
      hiddenSize: 8,
      numLayers: 1,
      headDim: 4,
      intermediateSize: 32,
      maxPositions: 16,
    });
    await registerBase(reg, 'mini', mini); // 1,144 parameters
    const huge = vlmAdapter(mini, { bottleneck: 1344 }); // 22,880 parameters
    const err = await errorOf(await publish(reg, 'huge', { base: 'mini@1' }, huge));
    expect(err).toMatchObject({ status: 400, code: 'adapter_too_large' });
    expect(err.message).toMatch(/it has 22,880 parameters, more than this tenant's bound of 114 \(10% of the 1,144/);
    expect((await reg.fetch('/v1/adapters/huge')).status).toBe(404);
    expect(await reg.partials()).toBe(0);
  });

  it('the operator sets the bound per tenant; null restores the default', async () => {
    const big = vlmAdapter(config, { bottleneck: 16 }); // 14.4 % of the base
    expect((await errorOf(await publish(reg, 'big', { base: 'toy@1' }, big))).code).toBe('adapter_too_large');
    expect(await setBound('acme', 0.2)).toMatchObject({ id: 'acme', max_adapter_fraction: 0.2 });
    expect((await published(reg, 'big', { base: 'toy@1' }, big)).params).toBe(1168);
    // Another tenant keeps the default.
    const res = await publish(reg, 'rivals-big', { base: 'toy@1' }, big, rival);
    expect((await errorOf(res)).message).toMatch(/bound of 812 \(10%/);
    const tenants = (await (await reg.fetch('/v1/tenants')).json()).data;
    expect(tenants.find((t: { id: string }) => t.id === 'rival').max_adapter_fraction).toBe(0.1);

    expect(await setBound('acme', null)).toMatchObject({ max_adapter_fraction: 0.1 });
    expect((await errorOf(await publish(reg, 'big', { base: 'toy@1' }, big))).code).toBe('adapter_too_large');
    const bad = await reg.fetch('/v1/tenants/acme', json('PATCH', { max_adapter_fraction: -1 }));
    expect(await errorOf(bad)).toMatchObject({ status: 400, code: 'validation_error' });
    expect((await reg.fetch('/v1/tenants/nobody', json('PATCH', { max_adapter_fraction: 1 }))).status).toBe(404);
  });
});
