import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixture, readJson } from '../helpers/fixtures.ts';
import { startWorkerRegistry, type TestWorker } from '../helpers/registry.ts';
import { RegistryClient } from '../../registry/client.ts';
import { describeLocalModel, publishFolder } from '../../registry/local.ts';
import { startComputeNode, type ComputeNode } from '../../src/compute/node.ts';
import { COMPUTE_TOKEN, freePort } from '../helpers/compute.ts';

/**
 * The Cloudflare Worker entry in workerd (wrangler's local runtime, D1 + R2), generating through
 * a compute node on 127.0.0.1.
 */
describe('Worker entry', () => {
  let worker: TestWorker;
  let compute: ComputeNode;
  // The Worker's admin key (its VERSA_API_KEY secret); the compute node downloads adapter files with
  // a read-only key of its own, made with it (a node refuses a key that can write).
  const key = `vsk_worker-${crypto.randomUUID()}`;
  beforeAll(async () => {
    const port = await freePort();
    worker = await startWorkerRegistry({
      VERSA_API_KEY: key,
      COMPUTE_NODES: `http://127.0.0.1:${port}`,
      VERSA_COMPUTE_TOKEN: COMPUTE_TOKEN,
    });
    const readKey = await worker.fetch('/v1/keys', {
      key,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ tenant: 'default', name: 'compute', scopes: ['read'] }),
    });
    expect(readKey.status).toBe(201);
    compute = await startComputeNode({
      token: COMPUTE_TOKEN,
      model: fixture('stories260k/model.bin'),
      threads: 2,
      port,
      registry: worker.url,
      registryKey: ((await readKey.json()) as { key: string }).key,
    });
    const base = await worker.fetch('/v1/models/stories260k/versions', {
      key,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(await describeLocalModel(fixture('stories260k/model.bin'))),
    });
    expect(base.status).toBe(201);
    await publishFolder(
      new RegistryClient({ url: worker.url, key }),
      fixture('stories260k/adapters/vlm-max'),
      'vlm-max',
      { base: 'stories260k@1', alias: 'production' },
    );
  }, 180_000);
  afterAll(async () => {
    await worker?.close();
    await compute?.shutdown(1000);
  });

  it('answers a streamed chat completion through the adapter, with the golden text', async () => {
    const g = readJson('stories260k/adapters/vlm-max/expected/greedy.json').prompts[2];
    const openai = new OpenAI({ baseURL: `${worker.url}/v1`, apiKey: key, maxRetries: 0 });
    const stream = await openai.chat.completions.create({
      model: 'vlm-max',
      messages: [{ role: 'user', content: g.prompt_text }],
      temperature: 0,
      max_tokens: 120,
      stream: true,
    });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
    expect(text).toBe(g.greedy_text);
    const usage = await worker.fetch('/v1/completions', {
      key,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'stories260k', prompt: 'Once', max_tokens: 3, temperature: 0 }),
    });
    expect(usage.status).toBe(200);
    expect((await usage.json()).usage.completion_tokens).toBe(3);
  });
});
