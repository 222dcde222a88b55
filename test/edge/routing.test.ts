import { createServer, type Server } from 'node:http';
import { afterAll, describe, expect, it } from 'vitest';
import { startProduct } from '../helpers/product.ts';

/** A stand-in compute node that is always at capacity, asking callers to come back in `seconds`. */
async function busyNode(seconds: number): Promise<{ url: string; server: Server }> {
  const server = createServer((_req, res) => {
    res.writeHead(429, { 'content-type': 'application/json', 'retry-after': String(seconds) });
    res.end(JSON.stringify({ error: { message: 'at capacity', type: 'rate_limit_error', code: 'overloaded' } }));
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, server };
}

describe('edge routing', () => {
  const servers: Server[] = [];
  afterAll(() => servers.forEach((s) => s.close()));

  it("when every node is at capacity the client gets 429 with the smallest of the nodes' Retry-After", async () => {
    const nodes = await Promise.all([busyNode(7), busyNode(3)]);
    servers.push(...nodes.map((n) => n.server));
    const product = await startProduct({ nodes: () => nodes.map((n) => n.url) });
    try {
      const res = await fetch(`${product.registry.url}/v1/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${product.registry.adminKey}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'stories260k', prompt: 'x', max_tokens: 1 }),
      });
      expect(res.status).toBe(429);
      expect(res.headers.get('retry-after')).toBe('3');
    } finally {
      await product.close();
    }
  });
});

describe('honest endings', () => {
  it('a stream the node cut short ends with an error chunk, never a "length" finish and [DONE]', async () => {
    const server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      res.write(`${JSON.stringify({ type: 'token', token: 5, text: 'Once' })}\n`);
      const usage = { prompt_tokens: 1, completion_tokens: 1 };
      res.end(`${JSON.stringify({ type: 'done', finish_reason: 'cancelled', usage })}\n`);
    });
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    const product = await startProduct({ nodes: () => [url] });
    try {
      const res = await fetch(`${product.registry.url}/v1/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${product.registry.adminKey}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'stories260k', prompt: 'x', max_tokens: 400, stream: true }),
      });
      const body = await res.text();
      expect(body).toContain('"code":"generation_cancelled"');
      expect(body).not.toContain('[DONE]');
      expect(body).not.toContain('"finish_reason":"length"');
    } finally {
      await product.close();
      server.close();
    }
  });
});
