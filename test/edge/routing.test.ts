import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { modelSha256 } from '../../src/engine/weights/identity.ts';
import { fixture } from '../helpers/fixtures.ts';
import { startProduct } from '../helpers/product.ts';

let STORIES_SHA: string;
beforeAll(async () => {
  STORIES_SHA = await modelSha256(fixture('stories260k/model.bin'));
});

/**
 * A stand-in compute node: ready and serving stories260k by its /readyz (what the edge routes by),
 * answering generations with `generate` (a fault a real node does not make on demand).
 */
async function standIn(
  generate: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    if (req.url !== '/readyz') return generate(req, res);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ status: 'ready', base: { sha256: STORIES_SHA }, architecture: 'llama' }));
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, server };
}

/** A stand-in compute node that is always at capacity, asking callers to come back in `seconds`. */
function busyNode(seconds: number): Promise<{ url: string; server: Server }> {
  return standIn((_req, res) => {
    res.writeHead(429, { 'content-type': 'application/json', 'retry-after': String(seconds) });
    res.end(JSON.stringify({ error: { message: 'at capacity', type: 'rate_limit_error', code: 'overloaded' } }));
  });
}

/** POST /v1/completions for stories260k on the product's edge. */
function completion(url: string, key: string, body: object): Promise<Response> {
  return fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'stories260k', prompt: 'x', ...body }),
  });
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
    const { url, server } = await standIn((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      res.write(`${JSON.stringify({ type: 'token', token: 5, text: 'Once' })}\n`);
      const usage = { prompt_tokens: 1, completion_tokens: 1 };
      res.end(`${JSON.stringify({ type: 'done', finish_reason: 'cancelled', usage })}\n`);
    });
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

/** Issue #19 N6: the edge checks what a node sends, and reads no line without end. */
describe("a node's stream is checked", () => {
  const first = `${JSON.stringify({ type: 'token', token: 5, text: 'Once' })}\n`;

  it('an event that is not the protocol ends the stream with an error chunk, streamed or whole', async () => {
    const { url, server } = await standIn((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      res.write(first);
      res.end(`${JSON.stringify({ type: 'token', token: '6', text: { html: '<script>' } })}\n`);
    });
    const product = await startProduct({ nodes: () => [url] });
    try {
      const streamed = await completion(product.registry.url, product.registry.adminKey, { stream: true });
      const body = await streamed.text();
      expect(body).toContain('"code":"compute_protocol_error"');
      expect(body).not.toContain('<script>');
      expect(body).not.toContain('[DONE]');
      const whole = await completion(product.registry.url, product.registry.adminKey, {});
      expect(whole.status).toBe(502);
      expect((await whole.json()).error).toMatchObject({ code: 'compute_protocol_error', type: 'server_error' });
    } finally {
      await product.close();
      server.close();
    }
  });

  it('a line without end is read up to 1 MiB, then the stream ends with an error chunk and is closed', async () => {
    let sent = 0;
    let closed!: () => void;
    const connectionClosed = new Promise<void>((done) => (closed = done));
    const { url, server } = await standIn((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      res.write(first);
      const chunk = Buffer.alloc(64 * 1024, 'x');
      const more = () => {
        if (res.destroyed) return;
        sent += chunk.length;
        res.write(chunk, () => setImmediate(more));
      };
      res.on('close', closed);
      res.write('{"type":"token","token":6,"text":"', more);
    });
    const product = await startProduct({ nodes: () => [url] });
    try {
      const res = await completion(product.registry.url, product.registry.adminKey, { stream: true });
      const body = await res.text();
      expect(body).toContain('"code":"compute_protocol_error"');
      expect(body).toContain('over 1048576 bytes');
      await connectionClosed; // the edge stopped reading: the node's endless line goes nowhere
      expect(sent).toBeLessThan(64 * 1024 * 1024);
    } finally {
      await product.close();
      server.close();
    }
  });

  it('a node that serves other weights than it said is not trusted: 503 no_node_for_base', async () => {
    const { url, server } = await standIn((_req, res) => {
      res.writeHead(409, { 'content-type': 'application/json' });
      const message = 'this node serves other weights';
      res.end(JSON.stringify({ error: { message, type: 'conflict_error', code: 'base_mismatch' } }));
    });
    const product = await startProduct({ nodes: () => [url] });
    try {
      const res = await completion(product.registry.url, product.registry.adminKey, {});
      expect(res.status).toBe(503);
      expect((await res.json()).error).toMatchObject({ code: 'no_node_for_base', type: 'server_error' });
    } finally {
      await product.close();
      server.close();
    }
  });
});
