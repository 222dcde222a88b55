import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { publishFolder } from '../../registry/local.ts';
import { startNodeServer } from '../../src/edge/server-node.ts';
import { fixture } from '../helpers/fixtures.ts';
import { startProduct, type TestProduct } from '../helpers/product.ts';
import { startWorkerRegistry } from '../helpers/registry.ts';
import { vlmMaxExperiment } from '../helpers/experiments.ts';

/** A metrics page as {`name{labels}`: value}, for the lines whose labels include every one of `where`. */
function samples(text: string, name: string, where: Record<string, string> = {}): number[] {
  return text
    .split('\n')
    .filter((l) => l.startsWith(`${name}{`))
    .filter((l) => Object.entries(where).every(([k, v]) => l.includes(`${k}="${v}"`)))
    .map((l) => Number(l.slice(l.lastIndexOf(' ') + 1)));
}
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

async function scrape(url: string, key?: string) {
  const res = await fetch(`${url}/metrics`, key ? { headers: { authorization: `Bearer ${key}` } } : {});
  return { status: res.status, type: res.headers.get('content-type'), text: await res.text() };
}

describe('edge /metrics (Node)', () => {
  let product: TestProduct;
  let experiment: string;
  beforeAll(async () => {
    product = await startProduct();
    experiment = await vlmMaxExperiment(product.client);
  });
  afterAll(() => product?.close());

  it('counts requests, errors, latency and tokens per adapter version and arm, for an operator key only', async () => {
    const openai = product.openai();
    let loraTokens = 0;
    for (let i = 0; i < 3; i++) {
      const r = await openai.completions.create({ model: 'lora-max', prompt: 'Once', max_tokens: 3, temperature: 0 });
      loraTokens += r.usage!.completion_tokens;
    }
    const stream = await openai.chat.completions.create({
      model: 'lora-max',
      messages: [{ role: 'user', content: 'Once' }],
      max_tokens: 2,
      stream: true,
    });
    for await (const _ of stream);
    const arms = new Set<string>();
    for (let i = 0; i < 12; i++) {
      const { response } = await openai.completions
        .create({ model: 'vlm-max', prompt: 'Once', max_tokens: 1, user: `user-${i}` })
        .withResponse();
      arms.add(response.headers.get('x-versa-arm')!);
    }
    expect(arms).toEqual(new Set(['control', 'candidate']));
    await expect(openai.completions.create({ model: 'no-such-adapter', prompt: 'x' })).rejects.toMatchObject({
      status: 404,
    });
    await expect(
      openai.completions.create({ model: 'lora-max', prompt: 'x', max_tokens: 1_000_000 }),
    ).rejects.toMatchObject({ status: 400 });

    expect((await scrape(product.registry.url)).status).toBe(401);
    expect((await scrape(product.registry.url, 'vsk_not-a-key-0000000000000000')).status).toBe(401);
    const generateKey = await product.registry.key('acme', ['generate']);
    expect((await scrape(product.registry.url, generateKey)).status).toBe(403);
    const page = await scrape(product.registry.url, product.registry.adminKey);
    expect(page.status).toBe(200);
    expect(page.type).toMatch(/^text\/plain; version=0\.0\.4/);
    const m = page.text;

    const lora = { model: 'lora-max@1', experiment: '', arm: '' };
    expect(samples(m, 'versa_edge_requests_total', { ...lora, status: '2xx', code: '' })).toEqual([4]);
    expect(samples(m, 'versa_edge_requests_total', { ...lora, status: '4xx', code: 'max_tokens_too_large' })).toEqual([
      1,
    ]);
    expect(samples(m, 'versa_edge_tokens_total', { ...lora, kind: 'completion' })).toEqual([loraTokens + 2]);
    expect(samples(m, 'versa_edge_time_to_first_token_seconds_count', lora)).toEqual([4]);
    expect(samples(m, 'versa_edge_request_duration_seconds_bucket', { ...lora, le: '+Inf' })).toEqual([4]);
    const control = { model: 'vlm-max@1', experiment, arm: 'control', status: '2xx' };
    const candidate = { model: 'vlm-max@2', experiment, arm: 'candidate', status: '2xx' };
    expect(sum(samples(m, 'versa_edge_requests_total', control))).toBeGreaterThan(0);
    expect(
      sum(samples(m, 'versa_edge_requests_total', control)) + sum(samples(m, 'versa_edge_requests_total', candidate)),
    ).toBe(12);
    expect(
      samples(m, 'versa_edge_requests_total', { model: 'unresolved', status: '4xx', code: 'model_not_found' }),
    ).toEqual([1]);
    expect(m).toMatch(/^# TYPE versa_edge_request_duration_seconds histogram$/m);
  }, 120_000);

  it('keeps at most 64 adapter versions as labels, the rest as "other"', async () => {
    const openai = product.openai();
    for (let i = 0; i < 70; i++) {
      const name = `many-${String(i).padStart(2, '0')}`;
      await publishFolder(product.client, fixture('stories260k/adapters/lora-max'), name, { base: 'stories260k@1' });
      await openai.completions.create({ model: name, prompt: 'x', max_tokens: 1 });
    }
    const m = (await scrape(product.registry.url, product.registry.adminKey)).text;
    const models = new Set(
      m
        .split('\n')
        .filter((l) => l.startsWith('versa_edge_requests_total{'))
        .map((l) => /model="([^"]*)"/.exec(l)![1]),
    );
    models.delete('unresolved'); // requests that never named a version (the 404 above)
    expect(models.size).toBe(65); // 64 versions, then "other"
    expect(models.has('other')).toBe(true);
    expect(sum(samples(m, 'versa_edge_requests_total', { model: 'other' }))).toBeGreaterThan(0);
  }, 300_000);
});

describe('edge /metrics token (VERSA_METRICS_TOKEN)', () => {
  const token = 'metrics-token-0123456789abcdef';

  it('the Node entry takes it from the environment, and refuses a short one before starting', async () => {
    const before = process.env.VERSA_METRICS_TOKEN;
    try {
      process.env.VERSA_METRICS_TOKEN = 'short';
      await expect(startNodeServer({ port: 0, home: mkdtempSync(join(tmpdir(), 'versa-home-')) })).rejects.toThrow(
        /VERSA_METRICS_TOKEN must be at least 16 characters/,
      );
      process.env.VERSA_METRICS_TOKEN = token;
      const edge = await startNodeServer({ port: 0, home: mkdtempSync(join(tmpdir(), 'versa-home-')) });
      try {
        const page = await scrape(edge.url, token);
        expect(page.status).toBe(200);
        expect(page.text).toMatch(/^versa_edge_start_time_seconds \d+/m);
        expect((await scrape(edge.url, `${token}x`)).status).toBe(401);
        expect((await scrape(edge.url)).status).toBe(401);
      } finally {
        await edge.close();
      }
    } finally {
      if (before === undefined) delete process.env.VERSA_METRICS_TOKEN;
      else process.env.VERSA_METRICS_TOKEN = before;
    }
  });

  it('the Worker serves the same page for its isolate, with the token or its operator key', async () => {
    const worker = await startWorkerRegistry({ VERSA_METRICS_TOKEN: token });
    try {
      expect((await scrape(worker.url)).status).toBe(401);
      const missing = await worker.fetch('/v1/completions', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'no-such-model', prompt: 'x' }),
      });
      expect(missing.status).toBe(404);
      const page = await scrape(worker.url, token);
      expect(page.status).toBe(200);
      expect(page.type).toMatch(/^text\/plain; version=0\.0\.4/);
      expect(samples(page.text, 'versa_edge_requests_total', { model: 'unresolved', code: 'model_not_found' })).toEqual(
        [1],
      );
      expect((await scrape(worker.url, worker.adminKey)).status).toBe(200);
    } finally {
      await worker.close();
    }
  }, 120_000);
});
