import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { keepAliveFetch } from '../../src/edge/routing/node-http.ts';
import { NodePool, type NodeFetch } from '../../src/edge/routing/nodes.ts';
import { generateOnPool } from '../../src/edge/routing/compute-client.ts';
import { readEvents, type ComputeEvent, type GenerateBody } from '../../src/protocol/compute.ts';

const token = (text: string) => `${JSON.stringify({ type: 'token', token: 1, text })}\n`;
const usage = { prompt_tokens: 1, completion_tokens: 1 };
const DONE = `${JSON.stringify({ type: 'done', finish_reason: 'length', usage })}\n`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A stand-in compute node on 127.0.0.1 that answers each request with `answer`; counts its connections. */
async function fakeNode(answer: (req: IncomingMessage, res: ServerResponse) => void | Promise<void>) {
  const sockets: Socket[] = [];
  const server: Server = createServer((req, res) => {
    req.resume();
    req.once('end', () => void answer(req, res));
  });
  server.on('connection', (s) => sockets.push(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    sockets,
    close: () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))),
  };
}

/** The node's events for one generation through the edge's Node transport, read up to the last one. */
async function generate(fetchNode: NodeFetch, url: string, signal?: AbortSignal): Promise<ComputeEvent[]> {
  const res = await fetchNode(`${url}/v1/internal/generate`, { method: 'POST', body: '{}', signal });
  const events: ComputeEvent[] = [];
  for await (const e of readEvents(res.body!)) events.push(e);
  return events;
}

let stop: (() => Promise<void>) | undefined;
afterEach(async () => {
  await stop?.();
  stop = undefined;
});

describe("the edge's Node transport to its compute nodes", () => {
  it('reuses one connection when the last event comes a packet ahead of the stream end', async () => {
    const node = await fakeNode(async (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      res.write(token('a'));
      res.write(DONE);
      await sleep(20); // the reader has the last event well before the end of the stream
      res.end();
    });
    stop = node.close;
    const fetchNode = keepAliveFetch();
    for (let i = 0; i < 5; i++) {
      expect((await generate(fetchNode, node.url)).map((e) => e.type)).toEqual(['token', 'done']);
      await sleep(40);
    }
    expect(node.sockets).toHaveLength(1);
  });

  it('closes the connection of a node that goes on sending after its last event', async () => {
    const node = await fakeNode(async (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      res.write(DONE);
      const junk = Buffer.alloc(16 * 1024, 'x');
      while (!res.destroyed) {
        res.write(junk);
        await sleep(5);
      }
    });
    stop = node.close;
    expect((await generate(keepAliveFetch(), node.url)).map((e) => e.type)).toEqual(['done']);
    const socket = node.sockets[0];
    const started = Date.now();
    await new Promise((r) => (socket.destroyed ? r(null) : socket.once('close', r)));
    expect(Date.now() - started).toBeLessThan(1500);
  });

  it('an abort mid-stream ends the request to the node at once', async () => {
    let closedAt = 0;
    const node = await fakeNode(async (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      res.once('close', () => (closedAt = Date.now()));
      while (!res.destroyed) {
        res.write(token('x'));
        await sleep(10);
      }
    });
    stop = node.close;
    const abort = new AbortController();
    const res = await keepAliveFetch()(`${node.url}/v1/internal/generate`, {
      method: 'POST',
      body: '{}',
      signal: abort.signal,
    });
    const events = readEvents(res.body!);
    expect((await events.next()).value).toMatchObject({ type: 'token' });
    const abortedAt = Date.now();
    abort.abort();
    expect((await events.next()).value).toMatchObject({ type: 'error', error: { code: 'compute_stream_broken' } });
    await sleep(100);
    expect(closedAt).toBeGreaterThanOrEqual(abortedAt);
    expect(closedAt - abortedAt).toBeLessThan(100);
  });

  it('an abort after a whole answer keeps the connection and throws nothing', async () => {
    const node = await fakeNode((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      res.end(token('a') + DONE);
    });
    stop = node.close;
    const fetchNode = keepAliveFetch();
    for (let i = 0; i < 3; i++) {
      const abort = new AbortController();
      expect((await generate(fetchNode, node.url, abort.signal)).map((e) => e.type)).toEqual(['token', 'done']);
      abort.abort(); // what the edge does once a generation is over
      await sleep(20);
    }
    expect(node.sockets).toHaveLength(1);
  });

  it('a reader holding an event past the idle timeout is not a silent node; a silent node is', async () => {
    const node = await fakeNode(async (req, res) => {
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      res.write(token('a'));
      if (req.url?.includes('silent')) return; // sends nothing more
      await sleep(20);
      res.end(token('b') + DONE);
    });
    stop = node.close;
    const pool = new NodePool([node.url], { timeouts: { idleTimeoutMs: 150 } });
    pool.transport = keepAliveFetch();
    const body = { prompt: 'x', max_tokens: 2 } as GenerateBody;

    const held = generateOnPool(pool, [node.url], body, undefined);
    const kinds = [(await held.next()).value!.type];
    await sleep(400); // the reader holds the first token well past the idle timeout
    for (let e = await held.next(); !e.done; e = await held.next()) kinds.push(e.value.type);
    expect(kinds).toEqual(['token', 'token', 'done']);

    const silent = new NodePool([`${node.url}/silent`], { timeouts: { idleTimeoutMs: 150 } });
    silent.transport = keepAliveFetch();
    const events: ComputeEvent[] = [];
    for await (const e of generateOnPool(silent, [`${node.url}/silent`], body, undefined)) events.push(e);
    expect(events.map((e) => e.type)).toEqual(['token', 'error']);
    expect(events[1]).toMatchObject({ error: { code: 'compute_timeout' } });
  });

  it('a reader that stops asking mid-stream leaves no idle timer running', async () => {
    const node = await fakeNode(async (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      while (!res.destroyed) {
        res.write(token('x'));
        await sleep(10);
      }
    });
    stop = node.close;
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = timers();
    const pool = new NodePool([node.url], { timeouts: { idleTimeoutMs: 50 } });
    pool.transport = keepAliveFetch();
    const events = generateOnPool(pool, [node.url], { prompt: 'x', max_tokens: 100 } as GenerateBody, undefined);
    await events.next();
    await events.next(); // then never again, and no return()
    await sleep(300);
    expect(timers()).toBe(before);
  });
});
