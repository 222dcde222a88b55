import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiKey } from '../../registry/auth.ts';
import { publishFolder } from '../../registry/local.ts';
import { RegistryCache } from '../../src/edge/generation/cache.ts';
import { generationContext } from '../../src/edge/generation/context.ts';
import { nodeSettingsFrom } from '../../src/edge/routing/settings.ts';
import { fixture } from '../helpers/fixtures.ts';
import { startProduct, type TestProduct } from '../helpers/product.ts';

describe('RegistryCache: the staleness bound', () => {
  const clock = { now: 0 };
  const counting = () => {
    let reads = 0;
    return { load: async () => ++reads, reads: () => reads };
  };

  it('reuses an answer for less than ttlMs after it was read, then reads again', async () => {
    const cache = new RegistryCache(1000, () => clock.now);
    const source = counting();
    clock.now = 0;
    expect(await cache.get('k', source.load)).toBe(1);
    clock.now = 999;
    expect(await cache.get('k', source.load)).toBe(1);
    clock.now = 1000;
    expect(await cache.get('k', source.load)).toBe(2);
  });

  it('drops every answer on clear(), keeps neither failures nor null answers, and ttlMs 0 keeps nothing', async () => {
    const cache = new RegistryCache(1000, () => clock.now);
    const source = counting();
    await cache.get('k', source.load);
    cache.clear();
    expect(await cache.get('k', source.load)).toBe(2);

    await expect(cache.get('bad', () => Promise.reject(new Error('database down')))).rejects.toThrow('database down');
    expect(await cache.get('bad', async () => 'read again')).toBe('read again');
    expect(await cache.get('unknown key', async () => null)).toBeNull();
    expect(await cache.get('unknown key', async () => 'created since')).toBe('created since');

    const off = new RegistryCache(0, () => clock.now);
    const uncached = counting();
    await off.get('k', uncached.load);
    expect(await off.get('k', uncached.load)).toBe(2);
  });

  it('re-reads an answer asked for in its second half-life after the response, never serving one older', async () => {
    const cache = new RegistryCache(1000, () => clock.now);
    const source = counting();
    clock.now = 0;
    expect(await cache.get('k', source.load)).toBe(1);
    clock.now = 499;
    expect(await cache.get('k', source.load)).toBe(1);
    await cache.refreshDue();
    expect(source.reads()).toBe(1); // not due yet: nothing read again
    clock.now = 500;
    expect(await cache.get('k', source.load)).toBe(1); // served from the cache, and now due
    expect(source.reads()).toBe(1);
    await cache.refreshDue(); // what the entry points run once the response's headers are out
    expect(source.reads()).toBe(2);
    clock.now = 1400; // past the first read's bound, within the re-read's
    expect(await cache.get('k', source.load)).toBe(2);
    expect(source.reads()).toBe(2);
    clock.now = 1500; // the re-read's own bound: read again before answering
    expect(await cache.get('k', source.load)).toBe(3);
  });

  it('drops an answer re-read as null, keeps one whose re-read fails, never re-inserts across clear()', async () => {
    const cache = new RegistryCache(1000, () => clock.now);
    clock.now = 0;
    await cache.get('revoked', async () => 'principal');
    await cache.get('flaky', async () => 'resolution');
    await cache.get('moved', async () => 'v1');
    clock.now = 600;
    await cache.get('revoked', async () => null);
    await cache.get('flaky', () => Promise.reject(new Error('database down')));
    await cache.refreshDue();
    expect(await cache.get('revoked', async () => 'read again')).toBe('read again');
    expect(await cache.get('flaky', async () => 'read again')).toBe('resolution');

    let finish: (v: string) => void = () => {};
    await cache.get('moved', () => new Promise<string>((done) => (finish = done)));
    const refreshing = cache.refreshDue();
    cache.clear(); // a write through this process while the re-read is in flight
    finish('v1, read before the write');
    await refreshing;
    expect(await cache.get('moved', async () => 'v2')).toBe('v2');
  });

  it('takes its bound from VERSA_REGISTRY_CACHE_TTL (seconds; 0 turns it off) and names a bad value', () => {
    expect(nodeSettingsFrom({ VERSA_REGISTRY_CACHE_TTL: '2.5' })).toEqual({ registryCacheMs: 2500 });
    expect(generationContext(nodeSettingsFrom({ VERSA_REGISTRY_CACHE_TTL: '0' })).cache.ttlMs).toBe(0);
    expect(() => nodeSettingsFrom({ VERSA_REGISTRY_CACHE_TTL: 'soon' })).toThrow(
      'VERSA_REGISTRY_CACHE_TTL must be a number of seconds (0: off), not "soon"',
    );
  });

  it('stays bounded whatever the keys', async () => {
    const cache = new RegistryCache(1000, () => clock.now, 3);
    for (let i = 0; i < 10; i++) await cache.get(`k${i}`, async () => i);
    expect(cache.size).toBeLessThanOrEqual(3);
  });
});

/**
 * With a bound of a minute, a change made through the edge's own routes must still take effect on
 * the very next request: only the same-process invalidation can make it so.
 */
describe('the edge sees its own writes at once, whatever the cache bound', () => {
  let product: TestProduct;
  beforeAll(async () => {
    product = await startProduct({ generation: { registryCacheMs: 60_000 } });
    await publishFolder(product.client, fixture('stories260k/adapters/vlm-max'), 'vlm-max', {
      base: 'stories260k@1',
      description: 'v2',
    });
  }, 120_000);
  afterAll(() => product?.close());

  const generate = (model: string, key?: string, user?: string) =>
    product.registry.fetch('/v1/completions', {
      method: 'POST',
      key,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model, prompt: 'Once', max_tokens: 1, temperature: 0, user }),
    });
  const api = async (method: string, path: string, body?: object) => {
    const res = await product.registry.fetch(path, {
      method,
      headers: { 'content-type': 'application/json' },
      body: body && JSON.stringify(body),
    });
    expect(res.status, await res.clone().text()).toBeLessThan(300);
    return res.json();
  };
  const servedVersion = async (model: string) => {
    const res = await generate(model);
    expect(res.status, await res.clone().text()).toBe(200);
    await res.arrayBuffer();
    return res.headers.get('x-versa-adapter-version');
  };

  it('a moved alias', async () => {
    expect(await servedVersion('vlm-max')).toBe('1');
    await api('PUT', '/v1/adapters/vlm-max/aliases/production', { version: 2 });
    expect(await servedVersion('vlm-max')).toBe('2');
    await api('PUT', '/v1/adapters/vlm-max/aliases/production', { version: 1 });
    expect(await servedVersion('vlm-max')).toBe('1');
  });

  it('a yanked version', async () => {
    expect(await servedVersion('vlm-max@2')).toBe('2');
    await api('PATCH', '/v1/adapters/vlm-max/versions/2', { status: 'yanked' });
    const res = await generate('vlm-max@2');
    expect(res.status).toBe(410);
  });

  it('a stopped experiment', async () => {
    const experiment = await api('POST', '/v1/experiments', {
      name: 'cache',
      adapter: 'lora-max',
      status: 'running',
      arms: [
        { name: 'a', alias: 'production', weight: 50 },
        { name: 'b', alias: 'production', weight: 50 },
      ],
    });
    const running = await generate('lora-max', undefined, 'unit-1');
    await running.arrayBuffer();
    expect(running.headers.get('x-versa-experiment')).toBe(experiment.id);
    await api('PATCH', `/v1/experiments/${experiment.id}`, { status: 'stopped' });
    const stopped = await generate('lora-max', undefined, 'unit-1');
    expect(stopped.status).toBe(200);
    await stopped.arrayBuffer();
    expect(stopped.headers.get('x-versa-experiment')).toBeNull();
  });

  it('a revoked key', async () => {
    const created = await createApiKey(product.registry.registry, { tenant: 'acme', scopes: ['generate'] });
    const before = await generate('stories260k', created.key);
    expect(before.status).toBe(200);
    await before.arrayBuffer();
    await api('DELETE', `/v1/keys/${created.id}`);
    const after = await generate('stories260k', created.key);
    expect(after.status).toBe(401);
    expect((await after.json()).error.code).toBe('invalid_api_key');
  });
});
