import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient } from '../../registry/client.ts';
import { describeLocalModel, publishFolder } from '../../registry/local.ts';
import { startComputeNode, type ComputeNode } from '../../src/compute/node.ts';
import { COMPUTE_TOKEN, freePort } from '../helpers/compute.ts';
import { fixture } from '../helpers/fixtures.ts';
import { startWorkerRegistry, type TestWorker } from '../helpers/registry.ts';

/**
 * The Worker's path to the first token in the steady state, on wrangler's local runtime (workerd,
 * local D1): its registry answers come from the isolate's cache, so a request makes at most one D1
 * round trip before its first token (VERSA_COUNT_D1 counts them: real D1 underneath). Its own
 * writes still take effect on the next request.
 */
describe('Worker entry: D1 round trips before the first token', () => {
  let worker: TestWorker;
  let compute: ComputeNode;
  let client: RegistryClient;
  const key = `vsk_worker-${crypto.randomUUID()}`;
  beforeAll(async () => {
    const port = await freePort();
    worker = await startWorkerRegistry({
      VERSA_API_KEY: key,
      COMPUTE_NODES: `http://127.0.0.1:${port}`,
      VERSA_COMPUTE_TOKEN: COMPUTE_TOKEN,
      VERSA_COUNT_D1: '1',
      VERSA_REGISTRY_CACHE_TTL: '2',
    });
    client = new RegistryClient({ url: worker.url, key });
    const readKey = await client.json<{ key: string }>('POST', '/v1/keys', {
      tenant: 'default',
      name: 'compute',
      scopes: ['read'],
    });
    compute = await startComputeNode({
      token: COMPUTE_TOKEN,
      model: fixture('stories260k/model.bin'),
      threads: 1,
      port,
      registry: worker.url,
      registryKey: readKey.key,
    });
    await client.json(
      'POST',
      '/v1/models/stories260k/versions',
      await describeLocalModel(fixture('stories260k/model.bin')),
    );
    for (const name of ['vlm-max', 'lora-max'])
      await publishFolder(client, fixture(`stories260k/adapters/${name}`), name, {
        base: 'stories260k@1',
        alias: 'production',
      });
    await publishFolder(client, fixture('stories260k/adapters/vlm-max'), 'vlm-max', { base: 'stories260k@1' });
    await client.json('POST', '/v1/experiments', {
      name: 'd1',
      adapter: 'lora-max',
      status: 'running',
      arms: [
        { name: 'control', version: 1, weight: 50 },
        { name: 'candidate', version: 1, weight: 50 },
      ],
    });
  }, 180_000);
  afterAll(async () => {
    await worker?.close();
    await compute?.shutdown(1000);
  });

  /** One streamed one-token generation; its D1 round trips before the first token, and its headers. */
  const generate = async (model: string, user?: string, bearer = key) => {
    const res = await worker.fetch('/v1/completions', {
      key: bearer,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model, prompt: 'Once', max_tokens: 1, temperature: 0, stream: true, user }),
    });
    const body = await res.text();
    const queries = res.headers.get('x-versa-d1-queries');
    expect(queries, 'the counting switch is on').not.toBeNull();
    return { status: res.status, body, headers: res.headers, queries: Number(queries) };
  };

  it('makes at most one D1 round trip per request for the base, an adapter by alias and an experiment', async () => {
    const requests = [['stories260k'], ['vlm-max'], ['lora-max', 'unit-1']] as const;
    const counts: Record<string, number[]> = {};
    // Past the cache's bound (2 s) twice: answers due are re-read after the responses, never before.
    // A pause between rounds keeps the key under its rate limit (600 a minute) on a fast machine.
    const start = Date.now();
    for (let round = 0; round < 4 || Date.now() - start < 5000; round++) {
      for (const [model, user] of requests) {
        const r = await generate(model, user);
        expect(r.status, r.body).toBe(200);
        if (round > 1) (counts[model] ??= []).push(r.queries); // rounds 0-1 fill the cache (and the node's)
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    for (const [model, n] of Object.entries(counts)) expect(Math.max(...n), `${model}: ${n}`).toBeLessThanOrEqual(1);
    // The count is real: a cold answer (after a write through the Worker dropped the cache) reads D1.
    await client.json('PUT', '/v1/adapters/vlm-max/aliases/production', { version: 1 });
    expect((await generate('vlm-max')).queries).toBeGreaterThan(1);
  });

  it('serves a moved alias and refuses a revoked key from the next request on', async () => {
    expect((await generate('vlm-max')).headers.get('x-versa-adapter-version')).toBe('1');
    await client.json('PUT', '/v1/adapters/vlm-max/aliases/production', { version: 2 });
    expect((await generate('vlm-max')).headers.get('x-versa-adapter-version')).toBe('2');

    const revoked = await client.json<{ id: string; key: string }>('POST', '/v1/keys', {
      tenant: 'default',
      name: 'soon revoked',
      scopes: ['generate'],
    });
    expect((await generate('stories260k', undefined, revoked.key)).status).toBe(200);
    await client.json('DELETE', `/v1/keys/${revoked.id}`);
    const refused = await generate('stories260k', undefined, revoked.key);
    expect(refused.status).toBe(401);
    expect(JSON.parse(refused.body).error.code).toBe('invalid_api_key');
  });
});
