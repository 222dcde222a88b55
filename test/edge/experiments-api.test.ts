import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { resolve } from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixture } from '../helpers/fixtures.ts';
import { startProduct, type TestProduct } from '../helpers/product.ts';
import { COMPUTE_TOKEN } from '../helpers/compute.ts';
import { serveRequests, vlmMaxExperiment } from '../helpers/experiments.ts';
import { NodePool } from '../../src/edge/routing/nodes.ts';

describe('A/B experiments through the API', () => {
  let product: TestProduct;
  let experiment: string;
  beforeAll(async () => {
    product = await startProduct();
    experiment = await vlmMaxExperiment(product.client); // v2 (a second version) against v1
  });
  afterAll(() => product?.close());

  const ask = (user: string) =>
    product
      .openai()
      .chat.completions.create({
        model: 'vlm-max',
        messages: [{ role: 'user', content: 'Once' }],
        max_tokens: 2,
        temperature: 0,
        user,
      })
      .withResponse();

  it('a unit gets the same arm on every request; arms are named in the headers', async () => {
    const arms = new Map<string, string>();
    for (let i = 0; i < 16; i++) {
      const { response } = await ask(`user-${i}`);
      expect(response.headers.get('x-versa-experiment')).toBe(experiment);
      const arm = response.headers.get('x-versa-arm')!;
      expect(response.headers.get('x-versa-adapter-version')).toBe(arm === 'control' ? '1' : '2');
      arms.set(`user-${i}`, arm);
    }
    expect(new Set(arms.values())).toEqual(new Set(['control', 'candidate']));
    for (const [user, arm] of [...arms].slice(0, 6))
      expect((await ask(user)).response.headers.get('x-versa-arm')).toBe(arm);
    // The x-versa-unit header is the unit when `user` is absent.
    const viaHeader = await fetch(`${product.registry.url}/v1/completions`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${product.registry.adminKey}`,
        'content-type': 'application/json',
        'x-versa-unit': 'user-3',
      },
      body: JSON.stringify({ model: 'vlm-max', prompt: 'x', max_tokens: 1 }),
    });
    expect(viaHeader.headers.get('x-versa-arm')).toBe(arms.get('user-3'));
  });

  it('results count units, requests and tokens per arm, and feedback with intervals', async () => {
    const scored = [];
    for (let i = 0; i < 6; i++) {
      const { data, response } = await ask(`rater-${i}`);
      scored.push({ id: data.id, arm: response.headers.get('x-versa-arm') });
      const fb = await product.client.json('POST', '/v1/feedback', { completion_id: data.id, score: i % 2 ? 1 : 0.5 });
      expect(fb.arm).toBe(response.headers.get('x-versa-arm'));
    }
    await new Promise((r) => setTimeout(r, 100)); // usage events are written after the response
    const results = await product.client.json('GET', `/v1/experiments/${experiment}/results`);
    expect(results.arms.map((a: any) => a.arm)).toEqual(['control', 'candidate']);
    const total = results.arms.reduce((n: number, a: any) => n + a.requests, 0);
    expect(total).toBeGreaterThanOrEqual(16 + 6 + 6 + 1);
    for (const a of results.arms) {
      expect(a.units).toBeGreaterThan(0);
      expect(a.tokens.completion).toBeGreaterThan(0);
      expect(a.latency_ms.p50).toBeGreaterThan(0);
      expect(a.error_rate).toBe(0);
      expect(a.feedback.n).toBe(scored.filter((s) => s.arm === a.arm).length);
    }
    expect(results.arms[1].vs_control).toHaveProperty('feedback');
    expect(results.srm.p_value).toBeGreaterThan(SRM_FAIR);
    expect(
      await product.client
        .request('POST', '/v1/feedback', { completion_id: 'chatcmpl-nope', score: 1 })
        .catch((e) => e.status),
    ).toBe(404);
  });

  it('the sample-ratio check flags a deliberately skewed exposure log', async () => {
    const other = await product.client.json('POST', '/v1/experiments', {
      name: 'skewed',
      adapter: 'lora-max',
      status: 'running',
      arms: [
        { name: 'a', alias: 'production', weight: 50 },
        { name: 'b', alias: 'production', weight: 50 },
      ],
    });
    const served = (arm: number, n: number) => Array.from({ length: n }, (_, i) => ({ unit: `${arm}-${i}`, arm }));
    await serveRequests(product.registry.registry, other.id, [...served(0, 700), ...served(1, 300)]);
    const skewed = await product.client.json('GET', `/v1/experiments/${other.id}/results`);
    expect(skewed.srm.mismatch).toBe(true);
    expect(skewed.srm.p_value).toBeLessThan(1e-6);
  });

  it('the kill switch sends every unit to control', async () => {
    await product.client.json('PATCH', `/v1/experiments/${experiment}`, { killed: true });
    for (let i = 0; i < 10; i++) expect((await ask(`user-${i}`)).response.headers.get('x-versa-arm')).toBe('control');
  });
});

const SRM_FAIR = 1e-3;

describe('routing to compute nodes', () => {
  it('a node that fails before the first token is retried on another', async () => {
    let nodes: string[] = [];
    const product = await startProduct({ nodes: async (live) => (nodes = await deadNodesFirst(live, 'stories260k')) });
    try {
      // a dead node is tried first
      expect((await new NodePool(nodes).order('stories260k'))[0]).not.toBe(product.compute.url);
      const r = await product
        .openai()
        .completions.create({ model: 'stories260k', prompt: 'Once upon a time', max_tokens: 8, temperature: 0 });
      expect(r.choices[0].text).toBe(', there was a little girl');
    } finally {
      await product.close();
    }
  });

  it('a node that dies after the first token ends the stream with an error the openai client raises', async () => {
    const child = spawn(
      process.execPath,
      [
        resolve(import.meta.dirname, '../../bin/versa.js'),
        'compute',
        '--model',
        fixture('stories260k/model.bin'),
        '--port',
        '0',
        '--threads',
        '1',
      ],
      { stdio: ['ignore', 'pipe', 'ignore'], env: { ...process.env, VERSA_COMPUTE_TOKEN: COMPUTE_TOKEN } },
    );
    const url = await new Promise<string>((done) => child.stdout.once('data', (d) => done(String(d).trim())));
    const product = await startProduct({ nodes: () => [url] });
    try {
      const stream = await product.openai().chat.completions.create({
        model: 'stories260k',
        messages: [{ role: 'user', content: '' }],
        max_tokens: 400,
        stream: true,
        temperature: 0,
      });
      let chunks = 0;
      const error = await (async () => {
        for await (const _ of stream) if (++chunks === 3) child.kill('SIGKILL');
      })().catch((e) => e);
      expect(chunks).toBeGreaterThanOrEqual(3);
      expect(error).toBeInstanceOf(OpenAI.APIError);
      expect(String(error.message)).toMatch(/compute node/);
    } finally {
      child.kill('SIGKILL');
      await product.close();
    }
  });
});

/** The live node plus nodes with nothing listening, one of which rendezvous hashing tries first for `key`. */
async function deadNodesFirst(live: string, key: string): Promise<string[]> {
  const dead: string[] = [];
  do dead.push(`http://127.0.0.1:${await freePort()}`);
  while ((await new NodePool([...dead, live]).order(key))[0] === live);
  return [...dead, live];
}

function freePort(): Promise<number> {
  return new Promise((done) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => done(port));
    });
  });
}
