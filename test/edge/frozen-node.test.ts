import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { importLocalModel } from '../../registry/local.ts';
import type { GenerationConfig } from '../../src/edge/generation/config.ts';
import { startNodeServer, type NodeServer } from '../../src/edge/server-node.ts';
import { NodePool } from '../../src/edge/routing/nodes.ts';
import { COMPUTE_TOKEN, spawnComputeNode, type ComputeProcess } from '../helpers/compute.ts';
import { fixture } from '../helpers/fixtures.ts';

/**
 * A compute node frozen with SIGSTOP (as a stuck host or a debugger would leave it), behind the
 * Node edge with its timeouts set to about a second: requests fail over before the first token,
 * a stream frozen after it ends with an error chunk, and the health checks take the node out and
 * back in.
 */
const SECOND = { connectTimeoutMs: 1000, firstByteTimeoutMs: 1000, idleTimeoutMs: 1000 };
const KEY = `vsk_frozen-${crypto.randomUUID()}`;

async function startEdge(nodes: string[], generation: Partial<GenerationConfig>): Promise<NodeServer> {
  const edge = await startNodeServer({
    port: 0,
    home: mkdtempSync(join(tmpdir(), 'versa-edge-')),
    apiKey: KEY,
    deps: { generation: { nodes: { stories260k: nodes }, computeToken: COMPUTE_TOKEN, ...generation } },
  });
  await importLocalModel(edge.registry, { path: fixture('stories260k/model.bin'), name: 'stories260k' });
  return edge;
}

function complete(edge: NodeServer, body: object): Promise<Response> {
  return fetch(`${edge.url}/v1/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'stories260k', prompt: 'Once upon a time', temperature: 0, ...body }),
  });
}

const healthz = async (edge: NodeServer) => (await (await fetch(`${edge.url}/healthz`)).json()).compute_nodes;
const until = async (ok: () => Promise<boolean>) => {
  while (!(await ok())) await new Promise((r) => setTimeout(r, 50));
};

describe('a frozen compute node', () => {
  let first: ComputeProcess;
  let second: ComputeProcess;
  const edges: NodeServer[] = [];
  beforeAll(async () => {
    const nodes = await Promise.all([spawnComputeNode(), spawnComputeNode()]);
    // The node the edge tries first for the base model (rendezvous order) is the one to freeze.
    const order = await new NodePool(nodes.map((n) => n.url)).order('stories260k');
    [first, second] = order.map((url) => nodes.find((n) => n.url === url)!);
  }, 60_000);
  afterAll(async () => {
    first?.child.kill('SIGCONT');
    await Promise.all([...edges.map((e) => e.close()), first?.kill(), second?.kill()]);
  });

  it('is failed over before the first token: the request completes on the other node', async () => {
    const edge = await startEdge([first.url, second.url], { ...SECOND, healthCheckMs: 0 });
    edges.push(edge);
    first.child.kill('SIGSTOP');
    try {
      const res = await complete(edge, { max_tokens: 8, stream: true });
      expect(res.status).toBe(200);
      const body = await res.text();
      expect(body).toContain('data: [DONE]');
      expect(await healthz(edge)).toEqual({ healthy: 1, total: 2 });
      // Whole (not streamed) too, with the frozen node still tried last.
      const whole = await complete(edge, { max_tokens: 8 });
      expect(whole.status).toBe(200);
      expect((await whole.json()).usage.completion_tokens).toBe(8);
    } finally {
      first.child.kill('SIGCONT');
    }
  });

  it('frozen after the first token, ends the stream with an error chunk (no [DONE])', async () => {
    const edge = await startEdge([first.url, second.url], { ...SECOND, healthCheckMs: 0 });
    edges.push(edge);
    // stories260k decodes a few hundred tokens in well under a second: freeze the node as soon as
    // the first chunk is read, and try again in the rare case that the whole story came before.
    for (let attempt = 0; attempt < 5; attempt++) {
      const res = await complete(edge, { max_tokens: 480, stream: true });
      expect(res.status).toBe(200);
      const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
      let text = (await reader.read()).value ?? '';
      first.child.kill('SIGSTOP');
      for (let r = await reader.read(); !r.done; r = await reader.read()) text += r.value;
      first.child.kill('SIGCONT');
      if (text.includes('[DONE]')) continue;
      const last = text.trim().split('\n\n').at(-1)!;
      const error = JSON.parse(last.replace(/^data: /, '')).error;
      expect(error).toMatchObject({ code: 'compute_timeout', type: 'timeout' });
      expect(error.message).toMatch(/sent nothing for 1 s/);
      expect(await healthz(edge)).toEqual({ healthy: 1, total: 2 });
      return;
    }
    throw new Error('the node finished every stream before it could be frozen');
  });

  it('is taken out by the active health check, and back in once it answers again', async () => {
    const edge = await startEdge([first.url, second.url], { ...SECOND, healthCheckMs: 100 });
    edges.push(edge);
    await until(async () => (await healthz(edge)).healthy === 2);
    first.child.kill('SIGSTOP');
    try {
      await until(async () => (await healthz(edge)).healthy === 1);
      // Out of the order: the request goes to the live node, whole, while the other is still frozen.
      const res = await complete(edge, { max_tokens: 4 });
      expect(res.status).toBe(200);
    } finally {
      first.child.kill('SIGCONT');
    }
    await until(async () => (await healthz(edge)).healthy === 2);
  });
});
