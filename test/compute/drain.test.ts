import { describe, expect, it } from 'vitest';
import type { BlobReader } from '../../src/compute/blob-source.ts';
import { startComputeNode, type ComputeNode } from '../../src/compute/node.ts';
import { NodePool } from '../../src/edge/routing/nodes.ts';
import { blobFolder, COMPUTE_TOKEN, freePort, generate } from '../helpers/compute.ts';
import { fixture } from '../helpers/fixtures.ts';
import { startProduct } from '../helpers/product.ts';

/**
 * A draining node (SIGTERM, or shutdown()) keeps its port open until its last stream ends: new
 * requests get 503 + Retry-After and /readyz 503, so callers fail over at once. A request whose
 * adapter files are still being read holds the drain open for as long as the test needs (its
 * blob store waits on a gate: a slow disk or registry, which a test cannot cause for real).
 */
async function drainingNode(port = 0) {
  const blobs = await blobFolder({ 'vlm-max@1': fixture('stories260k/adapters/vlm-max') });
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  const slow: BlobReader = { get: async (sha256) => (await gate, blobs.store.get(sha256)) };
  const node = await startComputeNode({
    token: COMPUTE_TOKEN,
    model: fixture('stories260k/model.bin'),
    threads: 2,
    port,
    blobs: slow,
  });
  const running = generate(node.url, {
    adapter: blobs.refs['vlm-max@1'],
    prompt_ids: [1],
    max_tokens: 50,
    ignore_eos: true,
  });
  while (node.state.inflight === 0) await new Promise((r) => setTimeout(r, 5));
  const drained = node.shutdown(30_000);
  return { node, running, drained, open };
}

describe('a draining compute node', () => {
  it('answers new requests 503 + Retry-After and /readyz 503, finishes the running stream, then closes', async () => {
    const { node, running, drained, open } = await drainingNode();
    const refused = await generate(node.url, { prompt: '', max_tokens: 4 });
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('1');
    expect(refused.error).toMatchObject({ code: 'draining', type: 'server_error' });
    const ready = await fetch(`${node.url}/readyz`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toEqual({ status: 'draining' });

    open();
    const r = await running;
    expect(r.status).toBe(200);
    expect(r.end).toMatchObject({ type: 'done', finish_reason: 'length', usage: { completion_tokens: 50 } });
    await drained;
    await expect(fetch(`${node.url}/healthz`)).rejects.toThrow();
  });

  it('is failed over by the edge: the request completes on another node', async () => {
    let draining: Awaited<ReturnType<typeof drainingNode>> | undefined;
    const product = await startProduct({
      nodes: async (computeUrl) => {
        // A port that puts the draining node first in the edge's order for the base model.
        let url: string;
        do url = `http://127.0.0.1:${await freePort()}`;
        while ((await new NodePool([url, computeUrl]).order('stories260k'))[0] !== url);
        draining = await drainingNode(Number(new URL(url).port));
        return [url, computeUrl];
      },
    });
    let node: ComputeNode | undefined;
    try {
      node = draining!.node;
      const res = await product.openai().completions.create({ model: 'stories260k', prompt: 'Once', max_tokens: 4 });
      expect(res.usage?.completion_tokens).toBe(4);
      const health = await (await fetch(`${product.registry.url}/healthz`)).json();
      expect(health.compute_nodes).toEqual({ healthy: 1, total: 2 });
    } finally {
      draining?.open();
      await draining?.drained;
      await product.close();
    }
    expect(node!.state.draining).toBe(true);
  });
});
