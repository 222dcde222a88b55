import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eq } from 'drizzle-orm';
import { events } from '../../registry/schema.ts';
import { until } from '../helpers/experiments.ts';
import { startProduct, type TestProduct } from '../helpers/product.ts';

/** The Server-Timing entries of a response, name -> milliseconds (each entry must be `name;dur=N`). */
function phases(res: Response): Record<string, number> | null {
  const header = res.headers.get('server-timing');
  if (header === null) return null;
  return Object.fromEntries(
    header.split(',').map((entry) => {
      const m = /^\s*([a-z]+);dur=(\d+(?:\.\d+)?)\s*$/.exec(entry);
      if (!m) throw new Error(`not a Server-Timing entry with a duration: ${JSON.stringify(entry)}`);
      return [m[1], Number(m[2])];
    }),
  );
}

describe('Server-Timing on generation responses', () => {
  let product: TestProduct;
  beforeAll(async () => {
    product = await startProduct();
  }, 120_000);
  afterAll(() => product?.close());

  const generate = (path: string, body: object, headers: Record<string, string>, key?: string) =>
    product.registry.fetch(path, {
      method: 'POST',
      key,
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify({ max_tokens: 1, temperature: 0, ...body }),
    });
  const text = (headers: Record<string, string>, key?: string, model = 'stories260k') =>
    generate('/v1/completions', { model, prompt: 'Once upon a time', stream: true }, headers, key);

  it('breaks a streamed completion down by phase when an operator key asks', async () => {
    const res = await text({ 'x-versa-timing': '1' });
    expect(res.status).toBe(200);
    await res.text();
    const p = phases(res)!;
    expect(Object.keys(p)).toEqual(['auth', 'parse', 'resolve', 'route', 'node', 'edge', 'total']);
    // The edge's own share is its phases' sum (node excluded), and all of it lies within the total.
    expect(p.edge).toBeCloseTo(p.auth + p.parse + p.resolve + p.route, 1);
    expect(p.edge + p.node).toBeLessThanOrEqual(p.total + 0.02);
  });

  it('times chat template rendering, for an adapter by alias too', async () => {
    const res = await generate(
      '/v1/chat/completions',
      { model: 'vlm-max', messages: [{ role: 'user', content: 'hi' }] },
      { 'x-versa-timing': '1' },
    );
    expect(res.status).toBe(200);
    await res.json();
    expect(Object.keys(phases(res)!)).toEqual([
      'auth',
      'parse',
      'resolve',
      'template',
      'route',
      'node',
      'edge',
      'total',
    ]);
  });

  it('writes the exposure of a request in an experiment after its first token, off the path', async () => {
    await product.client.json('POST', '/v1/experiments', {
      name: 'timing',
      adapter: 'vlm-max',
      status: 'running',
      arms: [
        { name: 'a', alias: 'production', weight: 50 },
        { name: 'b', alias: 'production', weight: 50 },
      ],
    });
    const res = await text({ 'x-versa-timing': '1' }, undefined, 'vlm-max');
    expect(res.status).toBe(200);
    const experiment = res.headers.get('x-versa-experiment');
    expect(experiment).toBeTruthy();
    await res.text();
    expect(Object.keys(phases(res)!)).toEqual(['auth', 'parse', 'resolve', 'route', 'node', 'edge', 'total']);
    const exposures = async () => {
      const rows = await product.registry.registry.db.select().from(events).where(eq(events.experimentId, experiment!));
      return rows.filter((e) => e.type === 'exposure').length;
    };
    await until(async () => (await exposures()) > 0);
    expect(await exposures()).toBe(1);
  });

  it('is absent unless asked for', async () => {
    const res = await text({});
    expect(res.status).toBe(200);
    await res.text();
    expect(res.headers.get('server-timing')).toBeNull();
  });

  it("is never shown to a tenant's key, even when asked for", async () => {
    const key = await product.registry.key('acme', ['generate'], 'tenant-generate');
    const admin = await product.registry.key('acme', ['admin'], 'tenant-admin');
    for (const k of [key, admin]) {
      const res = await text({ 'x-versa-timing': '1' }, k);
      expect(res.status).toBe(200);
      await res.text();
      expect(res.headers.get('server-timing')).toBeNull();
    }
  });

  it('breaks down an error before the first token too', async () => {
    const res = await text({ 'x-versa-timing': '1' }, undefined, 'no-such-model');
    expect(res.status).toBe(404);
    expect(Object.keys(phases(res)!)).toEqual(['auth', 'parse', 'resolve', 'edge', 'total']);
  });
});
