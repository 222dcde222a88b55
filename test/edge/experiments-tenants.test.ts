import OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { assignArm } from '../../src/experiments/assign.ts';
import { publishVlmMaxV2, resetVlmMax, serveRequests, startVlmMaxExperiment, until } from '../helpers/experiments.ts';
import { startProduct, type TestProduct } from '../helpers/product.ts';

/**
 * An experiment belongs to its tenant: another tenant calling the (public) adapter is served its
 * production version, unexposed and uncounted, and sees none of the experiment; client errors
 * never count toward a guardrail; application metrics count once per unit and metric; feedback
 * and metrics are rate-limited per key.
 */
describe('experiments belong to their tenant', () => {
  let product: TestProduct;
  let rival: string;
  beforeAll(async () => {
    product = await startProduct();
    await publishVlmMaxV2(product.client);
    await api('PATCH', '/v1/adapters/vlm-max', { visibility: 'public' });
    rival = await product.registry.key('rival', ['generate', 'read', 'publish']);
  }, 180_000);
  afterAll(() => product?.close());
  beforeEach(() => resetVlmMax(product.client));

  const api = (method: string, path: string, body?: unknown) => product.client.json(method, path, body);
  const as = (key: string, method: string, path: string, body?: unknown) =>
    product.registry.fetch(path, {
      key,
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  const start = (body: Record<string, unknown> = {}) =>
    startVlmMaxExperiment(product.client, { name: 'tenancy', ...body });
  const ask = (key: string, user: string, prompt: string | number[] = 'Once') =>
    product
      .openai(key)
      .completions.create({ model: 'vlm-max', prompt, max_tokens: 1, temperature: 0, user })
      .withResponse();
  const stats = async () => (await api('GET', '/v1/stats')).events as { written: number; failed: number };
  /** Waits until `n` more events than `before` are written (the edge writes them after answering). */
  const written = (before: { written: number; failed: number }, n: number) =>
    until(async () => {
      const s = await stats();
      return s.written + s.failed >= before.written + before.failed + n;
    });
  const results = (id: string) => api('GET', `/v1/experiments/${id}/results`);
  const units = (r: any) => r.arms.reduce((n: number, a: any) => n + a.units, 0);

  it("another tenant's traffic is served production, unexposed and uncounted: it cannot promote an arm", async () => {
    const e = await start({ metrics: [{ name: 'thumbs', kind: 'binary' }], auto_promote: true });
    const before = await stats();
    const served = [];
    for (let i = 0; i < 60; i++) {
      const { data, response } = await ask(rival, `rival-${i}`);
      // Feedback favouring the candidate (what the attack sent): recorded, counted in no experiment.
      const score = response.headers.get('x-versa-arm') === 'candidate' ? 1 : 0;
      const fb = await as(rival, 'POST', '/v1/feedback', { completion_id: data.id, score });
      served.push({ headers: response.headers, feedback: await fb.json() });
    }
    await written(before, 60); // the usage events (feedback is written before its 201)
    const r = await results(e.id);
    expect(units(r)).toBe(0);
    expect(r.experiment).toMatchObject({ status: 'running', killed: false });
    expect((await api('GET', '/v1/adapters/vlm-max/aliases/production')).version).toBe(1);
    for (const { headers, feedback } of served) {
      expect(headers.get('x-versa-experiment')).toBeNull();
      expect(headers.get('x-versa-arm')).toBeNull();
      expect(headers.get('x-versa-adapter-version')).toBe('1');
      expect(headers.get('x-versa-resolved-via')).toBe('default');
      expect(feedback).toMatchObject({ experiment: null, arm: null, metric: null });
    }
    // The owner's own traffic is still exposed and counted.
    const { response } = await ask(product.registry.adminKey, 'owner-1');
    expect(response.headers.get('x-versa-experiment')).toBe(e.id);
    await until(async () => units(await results(e.id)) === 1);
  });

  it('every experiment route is 404 to another tenant, exactly as for an experiment that does not exist', async () => {
    const e = await start();
    await serveRequests(product.registry.registry, e.id, [{ unit: 'seen', arm: 0 }]);
    const routes: Array<[string, string, unknown?]> = [
      ['GET', `/v1/experiments/${e.id}`],
      ['GET', `/v1/experiments/${e.id}/results`],
      ['GET', `/v1/experiments/${e.id}/history`],
      ['PATCH', `/v1/experiments/${e.id}`, { killed: true }],
      ['POST', `/v1/experiments/${e.id}/promote`, { arm: 'candidate' }],
      ['POST', `/v1/experiments/${e.id}/metrics`, { events: [{ unit: 'seen', metric: 'score', value: 1 }] }],
    ];
    for (const [method, path, body] of routes) {
      const theirs = await as(rival, method, path, body);
      const missing = await as(rival, method, path.replace(e.id, 'exp_doesnotexist'), body);
      expect([path, theirs.status]).toEqual([path, 404]);
      const error = (await theirs.json()).error;
      expect(error.code).toBe('experiment_not_found');
      expect(error).toEqual({ ...(await missing.json()).error, message: error.message });
    }
    // Listing a public adapter's experiments shows another tenant none.
    const listed = await as(rival, 'GET', '/v1/experiments?adapter=vlm-max');
    expect([listed.status, (await listed.json()).data]).toEqual([200, []]);
    const r = await results(e.id);
    expect(r.experiment.killed).toBe(false);
    expect(r.arms[0].units).toBe(1);
    expect(r.history.map((h: any) => h.kind)).toEqual(['start']);
  });

  it('client errors (4xx) never count toward a guardrail', async () => {
    const e = await start({ guardrails: { error_rate: 0.05 } });
    const arms = [
      { name: 'control', weight: 50 },
      { name: 'candidate', weight: 50 },
    ];
    const pick = async (arm: string, n: number) => {
      const found: string[] = [];
      for (let i = 0; found.length < n; i++)
        if ((await assignArm(e.id, `c4-${i}`, arms)).name === arm) found.push(`c4-${i}`);
      return found;
    };
    const before = await stats();
    for (const user of await pick('control', 21)) await ask(product.registry.adminKey, user);
    // The candidate's units send prompts the node refuses (token ids outside the vocabulary): 400s.
    for (const user of await pick('candidate', 21)) {
      const error = await ask(product.registry.adminKey, user, [1_000_000]).catch((err) => err);
      expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    }
    await written(before, 2 * 42); // exposure + usage each
    const r = await results(e.id);
    expect(r.experiment.killed).toBe(false);
    expect(r.guardrails.state).toBe('ok');
    expect(r.arms.map((a: any) => [a.arm, a.units, a.requests, a.error_rate])).toEqual([
      ['control', 21, 21, 0],
      ['candidate', 0, 0, null],
    ]);
  });

  it('an application metric counts once per unit: a repeat replaces it (the latest in a call wins)', async () => {
    const e = await start({ metrics: [{ name: 'revenue', kind: 'continuous', min: 0, max: 1e6 }] });
    await serveRequests(product.registry.registry, e.id, [{ unit: 'buyer', arm: 1 }], new Date(Date.now() - 60_000));
    const metrics = `/v1/experiments/${e.id}/metrics`;
    const copies = Array.from({ length: 1000 }, (_, i) => ({ unit: 'buyer', metric: 'revenue', value: i }));
    expect(await api('POST', metrics, { events: copies })).toEqual({ accepted: 1000 });
    const once = (await results(e.id)).arms[1].metrics.revenue;
    expect(once).toMatchObject({ n: 1, mean: 999 });
    const t = (s: number) => new Date(Date.now() - s * 1000).toISOString();
    await api('POST', metrics, {
      events: [
        { unit: 'buyer', metric: 'revenue', value: 7, ts: t(1) },
        { unit: 'buyer', metric: 'revenue', value: 3, ts: t(5) }, // older: the 7 stands
      ],
    });
    expect((await results(e.id)).arms[1].metrics.revenue).toMatchObject({ n: 1, mean: 7 });
  });
});

describe('feedback and application metrics are rate-limited per key', () => {
  it('past its events per minute, a key gets 429 with Retry-After on both routes', async () => {
    const product = await startProduct({ generation: { eventRateLimitPerMinute: 5 } });
    try {
      const e = await product.client.json('POST', '/v1/experiments', {
        name: 'limited',
        adapter: 'vlm-max',
        status: 'running',
        arms: [{ name: 'only', version: 1, weight: 1 }],
      });
      const { data } = await product
        .openai()
        .completions.create({ model: 'vlm-max', prompt: 'x', max_tokens: 1, user: 'u' })
        .withResponse();
      const post = (path: string, body: unknown) =>
        product.registry.fetch(path, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
      const metrics = `/v1/experiments/${e.id}/metrics`;
      const event = { unit: 'u', metric: 'score', value: 1 };
      expect((await post(metrics, { events: [event, event, event, event] })).status).toBe(202);
      expect((await post('/v1/feedback', { completion_id: data.id, score: 1 })).status).toBe(201);
      for (const refused of [
        await post('/v1/feedback', { completion_id: data.id, score: 1 }),
        await post(metrics, { events: [event] }),
      ]) {
        expect(refused.status).toBe(429);
        expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
        expect((await refused.json()).error.code).toBe('rate_limit_exceeded');
      }
    } finally {
      await product.close();
    }
  });
});
