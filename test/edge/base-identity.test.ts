import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FolderBlobStore } from '../../registry/blobs/folder.ts';
import { RegistryClient } from '../../registry/client.ts';
import { importLocalModel, publishFolder } from '../../registry/local.ts';
import { startComputeNode, type ComputeNode } from '../../src/compute/node.ts';
import { startNodeServer, type NodeServer } from '../../src/edge/server-node.ts';
import { AUTH, COMPUTE_TOKEN, generate, metric } from '../helpers/compute.ts';
import { fixture } from '../helpers/fixtures.ts';

/**
 * A base version means those weights, end to end (issue #18, 1-2): two compute nodes on different
 * models behind one edge with the array form of COMPUTE_NODES ("any base"), and a second version
 * of stories260k with other weights. Each request goes only to a node serving exactly the resolved
 * base version (learned from the node's /readyz), else 503 `no_node_for_base`.
 */
const KEY = `vsk_identity-${crypto.randomUUID()}`;

/** stories260k's checkpoint with one weight changed: same architecture, other weights. */
function otherStories(): string {
  const dir = mkdtempSync(join(tmpdir(), 'versa-stories-mod-'));
  const path = join(dir, 'model.bin');
  const bytes = readFileSync(fixture('stories260k/model.bin'));
  bytes.writeFloatLE(bytes.readFloatLE(bytes.length - 4) + 0.5, bytes.length - 4);
  writeFileSync(path, bytes);
  copyFileSync(fixture('stories260k/tokenizer.bin'), join(dir, 'tokenizer.bin'));
  return path;
}

describe('a base version means those weights', () => {
  let stories: ComputeNode;
  let gpt2: ComputeNode;
  let edge: NodeServer;
  let storiesSha: string;
  const completions = (body: object) =>
    fetch(`${edge.url}/v1/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: 'Once upon a time', max_tokens: 4, temperature: 0, ...body }),
    });

  beforeAll(async () => {
    const home = mkdtempSync(join(tmpdir(), 'versa-edge-'));
    const blobs = new FolderBlobStore(join(home, 'blobs')); // the nodes read adapter files from the edge's store
    const start = (model: string, name: string) =>
      startComputeNode({ token: COMPUTE_TOKEN, model: fixture(model), threads: 1, base: { name }, blobs });
    [stories, gpt2] = await Promise.all([
      start('stories260k/model.bin', 'stories260k'),
      start('tiny-gpt2', 'tiny-gpt2'),
    ]);
    edge = await startNodeServer({
      port: 0,
      home,
      apiKey: KEY,
      deps: { generation: { nodes: { '*': [stories.url, gpt2.url] }, computeToken: COMPUTE_TOKEN, healthCheckMs: 0 } },
    });
    storiesSha = (
      await importLocalModel(edge.registry, { path: fixture('stories260k/model.bin'), name: 'stories260k' })
    ).sha256;
    await importLocalModel(edge.registry, { path: fixture('tiny-gpt2'), name: 'tiny-gpt2' });
    // stories260k@2: other weights, that no node serves.
    await importLocalModel(edge.registry, { path: otherStories(), name: 'stories260k' });
    const client = new RegistryClient({ url: edge.url, key: KEY });
    await publishFolder(client, fixture('stories260k/adapters/lora-max'), 'lora-max', { base: 'stories260k@1' });
  }, 60_000);
  afterAll(async () => {
    await edge?.close();
    await Promise.all([stories?.shutdown(1000), gpt2?.shutdown(1000)]);
  });

  it("a node reports the sha256 of its base's files, computed as the registry computes it", async () => {
    const ready = await (await fetch(`${stories.url}/readyz`)).json();
    expect(ready).toMatchObject({
      status: 'ready',
      architecture: 'llama',
      base: { name: 'stories260k', sha256: storiesSha },
    });
    const info = await (await fetch(`${stories.url}/v1/internal/info`, { headers: AUTH })).json();
    expect(info.base).toEqual(ready.base);
  });

  it('a node refuses a request for another base with 409 before any work', async () => {
    const other = 'f'.repeat(64);
    const r = await generate(stories.url, { prompt: 'Once', max_tokens: 2, base: { sha256: other } });
    expect(r.status).toBe(409);
    expect(r.error).toMatchObject({ code: 'base_mismatch', type: 'conflict_error' });
    expect(r.error.message).toContain(storiesSha.slice(0, 12));
    const same = await generate(stories.url, { prompt: 'Once', max_tokens: 2, base: { sha256: storiesSha } });
    expect(same.status).toBe(200);
  });

  it('each base goes only to the node that serves it, with the array form of COMPUTE_NODES', async () => {
    const before = await metric(gpt2.url, 'versa_requests_total', 'outcome="ok"');
    for (let i = 0; i < 6; i++) {
      const res = await completions({ model: 'stories260k@1', user: `u${i}` });
      expect(res.status).toBe(200);
      expect(res.headers.get('x-versa-base')).toBe('stories260k@1');
      const gpt = await completions({ model: 'tiny-gpt2', prompt: [464, 290], user: `u${i}` }); // vocabulary: 1000
      expect(gpt.status).toBe(200);
    }
    expect(await metric(gpt2.url, 'versa_requests_total', 'outcome="ok"')).toBe(before + 6);
    // An adapter on stories260k@1 runs on that node too, never blamed on the caller.
    const adapter = await completions({ model: 'lora-max' });
    expect(adapter.status).toBe(200);
  });

  it('a version no node serves is 503 no_node_for_base, never other weights', async () => {
    const res = await completions({ model: 'stories260k' }); // the latest: @2, other weights
    expect(res.status).toBe(503);
    const { error } = await res.json();
    expect(error).toMatchObject({ code: 'no_node_for_base', type: 'server_error' });
    expect(error.message).toContain('no compute node serves stories260k@2');
  });

  it('/v1/models says which bases and adapters are servable now', async () => {
    const res = await fetch(`${edge.url}/v1/models`, { headers: { authorization: `Bearer ${KEY}` } });
    const data: Array<{ id: string; servable?: boolean }> = (await res.json()).data;
    const servable = Object.fromEntries(data.map((m) => [m.id, m.servable]));
    // stories260k resolves to @2, which nothing serves; its adapter is on @1, which a node serves.
    expect(servable).toMatchObject({ stories260k: false, 'tiny-gpt2': true, 'lora-max': true });
  });
});
