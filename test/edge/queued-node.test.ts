import { describe, expect, it } from 'vitest';
import type { BlobReader } from '../../src/compute/blob-source.ts';
import { startComputeNode, type ComputeNode } from '../../src/compute/node.ts';
import { NodePool } from '../../src/edge/routing/nodes.ts';
import { blobFolder, COMPUTE_TOKEN, freePort, metric } from '../helpers/compute.ts';
import { fixture } from '../helpers/fixtures.ts';
import { startProduct } from '../helpers/product.ts';

/**
 * Past the first-byte timeout the edge probes the node: one that answers its /readyz is alive with
 * the request still before its first token (queued, or reading adapter files), so the edge keeps
 * waiting instead of failing over and marking a busy node down. The node's adapter read waits on a
 * gate here (a slow disk or registry, which a test cannot cause for real).
 */
describe('a node that is slow to its first token but alive', () => {
  it('is waited on, not failed over', async () => {
    const blobs = await blobFolder({ 'vlm-max@1': fixture('stories260k/adapters/vlm-max') });
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const slow: BlobReader = { get: async (sha256) => (await gate, blobs.store.get(sha256)) };
    let node: ComputeNode | undefined;
    const product = await startProduct({
      generation: { firstByteTimeoutMs: 100, connectTimeoutMs: 5000 },
      nodes: async (computeUrl) => {
        // A port that puts the slow node first in the edge's order for the adapter's version.
        let url: string;
        do url = `http://127.0.0.1:${await freePort()}`;
        while ((await new NodePool([url, computeUrl]).order('vlm-max@1'))[0] !== url);
        const port = Number(new URL(url).port);
        node = await startComputeNode({
          token: COMPUTE_TOKEN,
          model: fixture('stories260k/model.bin'),
          port,
          blobs: slow,
        });
        return [url, computeUrl];
      },
    });
    try {
      const pending = product.openai().completions.create({ model: 'vlm-max', prompt: 'Once', max_tokens: 4 });
      while (node!.state.inflight === 0) await new Promise((r) => setTimeout(r, 5));
      await new Promise((r) => setTimeout(r, 500)); // several first-byte timeouts, each answered by a probe
      open();
      expect((await pending).usage?.completion_tokens).toBe(4);
      expect(await metric(node!.url, 'versa_requests_total', 'outcome="ok"')).toBe(1);
      const health = await (await fetch(`${product.registry.url}/healthz`)).json();
      expect(health.compute_nodes).toEqual({ healthy: 2, total: 2 });
    } finally {
      open();
      await product.close();
      await node?.shutdown(1000);
    }
  });
});
