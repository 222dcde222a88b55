import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { publishFolder } from '../../registry/local.ts';
import { fixture } from '../helpers/fixtures.ts';
import { publishVlmMaxV2, resetVlmMax, serveRequests, startVlmMaxExperiment, until } from '../helpers/experiments.ts';
import { startProduct, type TestProduct } from '../helpers/product.ts';
import { BACKENDS, REPO_ROOT } from '../helpers/registry.ts';

/**
 * A/B decisions you can trust, through the API on both backends: per-request units, clean
 * exposure (kill switch, stop, alias arms), declared metrics, guardrails and promotion.
 */
describe.each(BACKENDS)('experiment integrity (%s)', (backend) => {
  let product: TestProduct;
  beforeAll(async () => {
    product = await startProduct({ backend });
    await publishVlmMaxV2(product.client);
  }, 180_000);
  afterAll(() => product?.close());
  beforeEach(() => resetVlmMax(product.client));

  const api = (method: string, path: string, body?: unknown) => product.client.json(method, path, body);
  const failure = (method: string, path: string, body?: unknown) =>
    product.client.request(method, path, body).then(
      () => ({ status: 0, code: null, message: '' }),
      (e) => ({ status: e.status, code: e.code, message: String(e.message) }),
    );
  const start = (body: Record<string, unknown>) => startVlmMaxExperiment(product.client, { name: 'test', ...body });
  const ask = (user?: string, headers: Record<string, string> = {}) =>
    product
      .openai()
      .completions.create(
        { model: 'vlm-max', prompt: 'Once', max_tokens: 2, temperature: 0, ...(user ? { user } : {}) },
        { headers },
      )
      .withResponse();
  const stats = async () => (await api('GET', '/v1/stats')).events as { written: number; failed: number };
  /** Sends requests, then waits until their events (exposure + usage each, when in an experiment) are written. */
  const traffic = async (users: Array<string | undefined>, eventsEach = 2) => {
    const before = await stats();
    const served = [];
    for (const u of users) served.push(await ask(u));
    await until(async () => {
      const s = await stats();
      return s.written + s.failed >= before.written + before.failed + users.length * eventsEach;
    });
    return served;
  };
  const results = (id: string) => api('GET', `/v1/experiments/${id}/results`);
  const sum = (r: any, key: string) => r.arms.reduce((n: number, a: any) => n + a[key], 0);

  it('a request with no user and no x-versa-unit is its own unit; units over 256 characters are a 400', async () => {
    const e = await start({ name: 'units' });
    await traffic([undefined, undefined, undefined, undefined, 'u-1', 'u-1', 'u-1']);
    const r = await results(e.id);
    expect(sum(r, 'requests')).toBe(7);
    expect(sum(r, 'units')).toBe(5);
    expect(sum(r, 'per_request_units')).toBe(4);
    const long = 'x'.repeat(257);
    const error = await ask(long).catch((err) => err);
    expect(error).toBeInstanceOf(OpenAI.APIError);
    expect(error.status).toBe(400);
    expect((await ask(undefined, { 'x-versa-unit': long }).catch((err) => err)).status).toBe(400);
    await api('PATCH', `/v1/experiments/${e.id}`, { status: 'stopped' });
  });

  it('traffic while killed or stopped is not counted; a unit counts once, in its arm', async () => {
    const e = await start({ name: 'clean exposure' });
    const users = Array.from({ length: 8 }, (_, i) => `clean-${i}`);
    await traffic(users);
    const counted = await results(e.id);
    expect(sum(counted, 'units')).toBe(8);
    expect(sum(counted, 'requests')).toBe(8);

    await api('PATCH', `/v1/experiments/${e.id}`, { killed: true });
    const killed = await traffic([...users, 'killed-0', 'killed-1']);
    for (const { response } of killed) expect(response.headers.get('x-versa-arm')).toBe('control');
    const afterKill = await results(e.id);
    expect(afterKill.arms.map((a: any) => [a.units, a.requests])).toEqual(
      counted.arms.map((a: any) => [a.units, a.requests]),
    );

    await api('PATCH', `/v1/experiments/${e.id}`, { killed: false });
    await traffic([...users, 'back-0']);
    const back = await results(e.id);
    expect(sum(back, 'units')).toBe(9); // 8 units + 1 new; the killed-only units never counted
    expect(sum(back, 'requests')).toBe(17);
    expect(sum(back, 'crossover_requests')).toBe(0);

    await api('PATCH', `/v1/experiments/${e.id}`, { status: 'stopped' });
    const stopped = await traffic(users, 1);
    expect(stopped[0].response.headers.get('x-versa-experiment')).toBeNull();
    const final = await results(e.id);
    expect(final.arms.map((a: any) => [a.units, a.requests])).toEqual(back.arms.map((a: any) => [a.units, a.requests]));
    expect(final.history.map((h: any) => h.kind)).toEqual(['start', 'kill', 'unkill', 'stop']);
  });

  it('an alias arm keeps the version it resolved to at start; moving the alias needs force', async () => {
    const e = await start({
      name: 'alias arm',
      arms: [
        { name: 'prod', alias: 'production', weight: 50 },
        { name: 'v2', version: 2, weight: 50 },
      ],
    });
    expect(e.arms[0]).toMatchObject({ alias: 'production', resolved_version: 1 });
    const refused = await failure('PUT', '/v1/adapters/vlm-max/aliases/production', { version: 2 });
    expect(refused).toMatchObject({ status: 409, code: 'alias_in_experiment' });
    expect(refused.message).toContain(e.id);
    const versionsBefore = (await api('GET', '/v1/adapters/vlm-max')).version_list.length;
    const publishing = publishFolder(product.client, fixture('stories260k/adapters/vlm-max'), 'vlm-max', {
      base: 'stories260k@1',
      alias: 'production',
    });
    await expect(publishing).rejects.toMatchObject({ status: 409, code: 'alias_in_experiment' });
    expect((await api('GET', '/v1/adapters/vlm-max')).version_list.length).toBe(versionsBefore);
    const forced = await api('PUT', '/v1/adapters/vlm-max/aliases/production', { version: 2, force: true });
    expect(forced).toMatchObject({ version: 2, previous_version: 1, changed: true });

    const served = await traffic(Array.from({ length: 12 }, (_, i) => `alias-${i}`));
    const prod = served.filter(({ response }) => response.headers.get('x-versa-arm') === 'prod');
    expect(prod.length).toBeGreaterThan(0);
    for (const { response } of prod) expect(response.headers.get('x-versa-adapter-version')).toBe('1');
    const r = await results(e.id);
    expect(r.arms[0]).toMatchObject({ arm: 'prod', version: 1, resolved_version: 1, alias: 'production' });
    const forcedEntry = r.history.find((h: any) => h.kind === 'alias_forced');
    expect(forcedEntry.detail).toMatchObject({ alias: 'production', to_version: 2 });

    await api('PATCH', `/v1/experiments/${e.id}`, { status: 'stopped' });
    expect((await api('PUT', '/v1/adapters/vlm-max/aliases/production', { version: 1 })).changed).toBe(true);
  });

  it('feedback keeps to its metric, once per completion and metric; app metrics count after exposure', async () => {
    const e = await start({
      name: 'metrics',
      metrics: [
        { name: 'thumbs', kind: 'binary' },
        { name: 'stars', kind: 'scale', min: 1, max: 5 },
        { name: 'conversion', kind: 'binary' },
      ],
    });
    const before = new Date(Date.now() - 60_000).toISOString();
    const [{ data, response }] = await traffic(['rater-1']);
    const arm = response.headers.get('x-versa-arm');
    const rate = (score: number, metric?: string) =>
      failure('POST', '/v1/feedback', { completion_id: data.id, score, ...(metric ? { metric } : {}) });
    expect(await rate(0.5)).toMatchObject({ status: 400, code: 'value_out_of_range' });
    expect(await rate(6, 'stars')).toMatchObject({ status: 400, code: 'value_out_of_range' });
    expect(await rate(2.5, 'stars')).toMatchObject({ status: 400, code: 'value_out_of_range' });
    expect(await rate(1, 'nope')).toMatchObject({ status: 400, code: 'unknown_metric' });
    expect(await api('POST', '/v1/feedback', { completion_id: data.id, score: 1 })).toMatchObject({ metric: 'thumbs' });
    await api('POST', '/v1/feedback', { completion_id: data.id, score: 0 }); // replaces the 1
    await api('POST', '/v1/feedback', { completion_id: data.id, score: 4, metric: 'stars' });

    const metrics = `/v1/experiments/${e.id}/metrics`;
    expect(
      await api('POST', metrics, {
        events: [
          { unit: 'rater-1', metric: 'conversion', value: 1 },
          { unit: 'rater-1', metric: 'conversion', value: 1, ts: before }, // before its exposure
          { unit: 'never-served', metric: 'conversion', value: 1 },
        ],
      }),
    ).toEqual({ accepted: 3 });
    expect(
      await failure('POST', metrics, { events: [{ unit: 'rater-1', metric: 'conversion', value: 2 }] }),
    ).toMatchObject({ status: 400, code: 'value_out_of_range' });
    const many = Array.from({ length: 1001 }, () => ({ unit: 'rater-1', metric: 'conversion', value: 1, ts: before }));
    expect((await failure('POST', metrics, { events: many })).status).toBe(400);
    // 1,000 is one write (all before the unit's exposure: none counts).
    expect(await api('POST', metrics, { events: many.slice(1) })).toEqual({ accepted: 1000 });

    const r = await results(e.id);
    const mine = r.arms.find((a: any) => a.arm === arm);
    expect(mine.metrics.thumbs).toMatchObject({ n: 1, mean: 0 });
    expect(mine.metrics.stars).toMatchObject({ n: 1, mean: 4 });
    expect(mine.metrics.conversion).toMatchObject({ n: 1, mean: 1 });
    expect(mine.feedback).toMatchObject({ n: 1, mean: 0 }); // the primary metric
    await api('PATCH', `/v1/experiments/${e.id}`, { status: 'stopped' });
  });

  it('a guardrail halts a deliberately slowed arm and records why; every unit then gets control', async () => {
    const e = await start({ name: 'guardrail', guardrails: { p95_latency: 0.2, error_rate: 0.05 } });
    // The candidate answers 3x slower than control (written through the edge's own aggregate statements).
    const requests = Array.from({ length: 60 }, (_, i) => [
      { unit: `g-c-${i}`, arm: 0, latencyMs: 80 + (i % 40) },
      { unit: `g-s-${i}`, arm: 1, latencyMs: 3 * (80 + (i % 40)) },
    ]).flat();
    await serveRequests(product.registry.registry, e.id, requests);
    const r = await results(e.id);
    expect(r.guardrails.state).toBe('violated');
    const check = r.guardrails.checks.find((c: any) => c.guardrail === 'p95_latency');
    expect(check).toMatchObject({ arm: 'candidate', violated: true });
    expect(r.guardrails.checks.find((c: any) => c.guardrail === 'error_rate').violated).toBe(false);
    expect(r.experiment).toMatchObject({ status: 'running', killed: true });
    expect(r.experiment.stop_reason).toMatch(/p95_latency.*candidate/);
    expect(r.history.at(-1)).toMatchObject({ kind: 'guardrail' });
    // Control, not the adapter's default: production points at the slowed version meanwhile.
    await api('PUT', '/v1/adapters/vlm-max/aliases/production', { version: 2 });
    for (const { response } of await traffic(['after-1', 'after-2', 'after-3', 'after-4'], 1)) {
      expect(response.headers.get('x-versa-arm')).toBe('control');
      expect(response.headers.get('x-versa-adapter-version')).toBe('1');
    }
    const again = await results(e.id);
    expect(sum(again, 'requests')).toBe(sum(r, 'requests')); // halted traffic is not counted
    expect(again.history.filter((h: any) => h.kind === 'guardrail')).toHaveLength(1);
  });

  it('a ramp is no sample-ratio mismatch; a unit a ramp moves keeps counting in its first arm only', async () => {
    const e = await start({
      name: 'ramp',
      arms: [
        { name: 'control', version: 1, weight: 90 },
        { name: 'candidate', version: 2, weight: 10 },
      ],
    });
    const units = (arm: number, n: number, prefix: string, period: number) =>
      Array.from({ length: n }, (_, i) => ({ unit: `${prefix}-${i}`, arm, period }));
    await serveRequests(product.registry.registry, e.id, [...units(0, 360, 'r0c', 0), ...units(1, 40, 'r0t', 0)]);
    const ramped = await api('PATCH', `/v1/experiments/${e.id}`, { weights: [50, 50] });
    expect(ramped.arms.map((a: any) => a.weight)).toEqual([50, 50]);
    await serveRequests(product.registry.registry, e.id, [
      ...units(0, 200, 'r1c', 1),
      ...units(1, 200, 'r1t', 1),
      { unit: 'r0c-0', arm: 1, period: 1 }, // moved to candidate by the ramp
    ]);
    const r = await results(e.id);
    expect(r.arms.map((a: any) => a.units)).toEqual([560, 240]);
    expect(r.srm.mismatch).toBe(false);
    expect(r.srm.expected).toEqual([560, 240]);
    expect(r.arms[1].crossover_requests).toBe(1);
    expect(r.arms[0].requests).toBe(560);
    expect(r.history.map((h: any) => h.kind)).toEqual(['start', 'weights']);
  });

  it('promote moves production to the arm, stops the experiment and names it in the alias history', async () => {
    const e = await start({ name: 'promote me' });
    const promoted = await api('POST', `/v1/experiments/${e.id}/promote`, { arm: 'candidate' });
    expect(promoted).toMatchObject({ alias: 'production', version: 2, previous_version: 1 });
    expect(promoted.experiment.status).toBe('stopped');
    expect((await api('GET', '/v1/adapters/vlm-max/aliases/production')).version).toBe(2);
    const history = await api('GET', '/v1/adapters/vlm-max/aliases/production/history');
    expect(history.data[0]).toMatchObject({ from_version: 1, to_version: 2 });
    expect(history.data[0].reason).toContain(e.id);
    expect((await api('GET', `/v1/experiments/${e.id}/history`)).data.at(-1).kind).toBe('promote');
    expect(await failure('POST', `/v1/experiments/${e.id}/promote`, { arm: 'candidate' })).toMatchObject({
      status: 409,
    });
    await api('PUT', '/v1/adapters/vlm-max/aliases/production', { version: 1 });
  });

  it('auto_promote promotes an arm the sequential test finds better, with no guardrail violated', async () => {
    const e = await start({
      name: 'auto',
      metrics: [{ name: 'conversion', kind: 'binary' }],
      guardrails: { error_rate: 0.05 },
      auto_promote: true,
    });
    const units = Array.from({ length: 120 }, (_, i) => i);
    await serveRequests(
      product.registry.registry,
      e.id,
      units.flatMap((i) => [
        { unit: `a-c-${i}`, arm: 0 },
        { unit: `a-t-${i}`, arm: 1 },
      ]),
    );
    const events = units.flatMap((i) => [
      { unit: `a-c-${i}`, metric: 'conversion', value: i % 10 < 2 ? 1 : 0 },
      { unit: `a-t-${i}`, metric: 'conversion', value: i % 10 < 7 ? 1 : 0 },
    ]);
    await api('POST', `/v1/experiments/${e.id}/metrics`, { events });
    const r = await results(e.id);
    expect(r.verdict.arms[0]).toMatchObject({ arm: 'candidate', verdict: 'better' });
    expect(r.experiment.status).toBe('stopped');
    expect(r.history.at(-1).kind).toBe('auto_promote');
    expect((await api('GET', '/v1/adapters/vlm-max/aliases/production')).version).toBe(2);
    await api('PUT', '/v1/adapters/vlm-max/aliases/production', { version: 1 });
  });

  // The CLI is a client of the HTTP API, the same on either backend: run once, on SQLite.
  if (backend === 'sqlite')
    it('versa experiments ls|show|promote|stop', async () => {
      const versa = (...args: string[]) =>
        promisify(execFile)(process.execPath, [join(REPO_ROOT, 'bin/versa.js'), 'experiments', ...args], {
          env: { ...process.env, VERSA_REGISTRY: product.registry.url, VERSA_API_KEY: product.registry.adminKey },
        }).then(
          ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
          (e) => ({ code: e.code as number, stdout: e.stdout as string, stderr: e.stderr as string }),
        );
      const e = await start({ name: 'from the cli' });
      await traffic(['cli-1', 'cli-2']);
      const ls = await versa('ls', 'vlm-max');
      expect(ls.stdout).toMatch(new RegExp(`${e.id}\\s+from the cli\\s+running\\s+control=v1:50 candidate=v2:50`));
      const show = await versa('show', e.id);
      expect(show.code).toBe(0);
      expect(show.stdout).toMatch(/^control\s+v1\s+\d+\s+\d+/m);
      expect(show.stdout).toMatch(/verdict \(score\): candidate too_few_units/);
      expect(show.stdout).toMatch(/guardrails: ok/);
      expect(JSON.parse((await versa('show', e.id, '--json')).stdout).experiment.id).toBe(e.id);
      const missing = await versa('promote', e.id, 'nope');
      expect(missing.code).toBe(1);
      expect(missing.stderr).toBe(`versa: error: 404: experiment "${e.id}" has no arm "nope"\n`);
      expect((await versa('promote', e.id, 'candidate')).stdout).toBe(`vlm-max@production: 1 -> 2; ${e.id} stopped\n`);
      expect((await versa('stop', e.id)).stdout).toBe(`${e.id} stopped\n`);
      const gone = await versa('show', 'exp_nope');
      expect(gone).toMatchObject({ code: 1, stderr: 'versa: error: 404: experiment "exp_nope" not found\n' });
    });

  it('event writes that fail are counted and logged, never dropped silently', async () => {
    const logged = vi.spyOn(console, 'error').mockImplementation(() => {});
    await product.registry.raw(
      `create trigger fail_events before insert on events begin select raise(abort, 'disk full'); end`,
    );
    try {
      const before = await stats();
      await ask('fault-1');
      await until(async () => (await stats()).failed >= before.failed + 1);
      expect(logged.mock.calls.some((c) => /could not be written.*disk full/.test(String(c[0])))).toBe(true);
    } finally {
      await product.registry.raw('drop trigger fail_events');
      logged.mockRestore();
    }
  });
});
