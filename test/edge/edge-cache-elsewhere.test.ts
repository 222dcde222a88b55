import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiKey, generateKey } from '../../registry/auth.ts';
import { RegistryClient } from '../../registry/client.ts';
import { importLocalModel, publishFolder } from '../../registry/local.ts';
import { startComputeNode, type ComputeNode } from '../../src/compute/node.ts';
import { RegistryCache } from '../../src/edge/generation/cache.ts';
import { generationContext } from '../../src/edge/generation/context.ts';
import { startNodeServer, type NodeServer } from '../../src/edge/server-node.ts';
import { COMPUTE_TOKEN, freePort } from '../helpers/compute.ts';
import { until } from '../helpers/experiments.ts';
import { fixture } from '../helpers/fixtures.ts';

/**
 * Writes made elsewhere (a second edge process on the same database: the CLI or another process in
 * production) reach an edge within its cache bound, and no later: the edge under test reads a clock
 * the test moves, so the bound is asserted without timing anything. Each case: the answer is kept
 * while young, re-read after a response once past half its life, and never served past the bound.
 */
describe('the edge sees writes made elsewhere within its cache bound', () => {
  const clock = { now: 0 };
  const home = mkdtempSync(join(tmpdir(), 'versa-elsewhere-'));
  const admin = generateKey();
  let edge: NodeServer;
  let elsewhere: NodeServer;
  let compute: ComputeNode;
  let client: RegistryClient;
  beforeAll(async () => {
    elsewhere = await startNodeServer({ home, port: 0, apiKey: admin, deps: { generation: { nodes: {} } } });
    await importLocalModel(elsewhere.registry, { path: fixture('stories260k/model.bin'), name: 'stories260k' });
    client = new RegistryClient({ url: elsewhere.url, key: admin });
    for (const version of [1, 2])
      await publishFolder(client, fixture('stories260k/adapters/vlm-max'), 'vlm-max', {
        base: 'stories260k@1',
        description: `v${version}`,
        ...(version === 1 ? { alias: 'production' } : {}),
      });
    await publishFolder(client, fixture('stories260k/adapters/lora-max'), 'lora-max', { base: 'stories260k@1' });
    const port = await freePort();
    compute = await startComputeNode({
      token: COMPUTE_TOKEN,
      model: fixture('stories260k/model.bin'),
      threads: 1,
      port,
      blobs: elsewhere.blobs,
    });
    const gen = generationContext({
      nodes: { stories260k: [`http://127.0.0.1:${port}`] },
      computeToken: COMPUTE_TOKEN,
    });
    gen.cache = new RegistryCache(1000, () => clock.now);
    edge = await startNodeServer({ home, port: 0, deps: { generationContext: gen } });
  }, 120_000);
  afterAll(async () => {
    await edge?.close();
    await elsewhere?.close();
    await compute?.shutdown(1000);
    rmSync(home, { recursive: true, force: true });
  });

  const generate = async (model: string, key = admin, user?: string) => {
    const res = await fetch(`${edge.url}/v1/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model, prompt: 'Once', max_tokens: 1, temperature: 0, user }),
    });
    await res.arrayBuffer();
    return res;
  };
  const version = async (model: string) => (await generate(model)).headers.get('x-versa-adapter-version');

  it('a moved alias: kept while young, never past the bound', async () => {
    clock.now = 0;
    expect(await version('vlm-max')).toBe('1');
    await client.json('PUT', '/v1/adapters/vlm-max/aliases/production', { version: 2 });
    clock.now = 999;
    expect(await version('vlm-max')).toBe('1'); // within the bound: the kept answer (the cache is real)
    clock.now = 1000;
    expect(await version('vlm-max')).toBe('2');
  });

  it('a moved alias: re-read after a response once past half the bound', async () => {
    clock.now = 2000;
    expect(await version('vlm-max')).toBe('2');
    await client.json('PUT', '/v1/adapters/vlm-max/aliases/production', { version: 1 });
    clock.now = 2600; // past half: served as kept, then read again once the response is out
    expect(await version('vlm-max')).toBe('2');
    await until(async () => (await version('vlm-max')) === '1'); // still within the first read's bound
  });

  it('a yanked version', async () => {
    clock.now = 10_000;
    expect(await version('vlm-max@2')).toBe('2');
    await client.json('PATCH', '/v1/adapters/vlm-max/versions/2', { status: 'yanked' });
    clock.now = 11_000;
    expect((await generate('vlm-max@2')).status).toBe(410);
  });

  it('a stopped experiment', async () => {
    const experiment = await client.json('POST', '/v1/experiments', {
      name: 'elsewhere',
      adapter: 'lora-max',
      status: 'running',
      arms: [
        { name: 'a', version: 1, weight: 50 },
        { name: 'b', version: 1, weight: 50 },
      ],
    });
    clock.now = 20_000;
    expect((await generate('lora-max', admin, 'unit-1')).headers.get('x-versa-experiment')).toBe(experiment.id);
    await client.json('PATCH', `/v1/experiments/${experiment.id}`, { status: 'stopped' });
    clock.now = 21_000;
    const stopped = await generate('lora-max', admin, 'unit-1');
    expect(stopped.status).toBe(200);
    expect(stopped.headers.get('x-versa-experiment')).toBeNull();
  });

  it('a revoked key', async () => {
    const created = await createApiKey(elsewhere.registry, { tenant: 'default', scopes: ['generate'] });
    clock.now = 30_000;
    expect((await generate('stories260k', created.key)).status).toBe(200);
    await client.json('DELETE', `/v1/keys/${created.id}`);
    clock.now = 30_600; // past half: still accepted, then read again after the response
    expect((await generate('stories260k', created.key)).status).toBe(200);
    await until(async () => (await generate('stories260k', created.key)).status === 401);
    clock.now = 31_000;
    expect((await generate('stories260k', created.key)).status).toBe(401);
  });
});
