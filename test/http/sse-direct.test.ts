import { connect } from 'node:net';
import { Hono, type Context } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ServerType } from '@hono/node-server';
import { listen } from '../../src/http/listen.ts';
import { sseResponse, type SseWriter } from '../../src/http/sse.ts';

/**
 * On Node's server (listen.ts) an event stream goes straight to the socket once the Response has
 * come back through the middlewares: the same bytes, headers and backpressure as the web stream
 * (sse.test.ts), and a producer that learns when its client left or its stream was dropped.
 */
describe('sseResponse on Node: events straight to the socket', () => {
  let server: ServerType;
  let url: string;
  /** What the current route's producer saw: how many writes resolved, and how it ended. */
  let seen: { written: number; ended?: string };
  let produce: (sse: SseWriter) => Promise<void>;
  const settle = () => new Promise((r) => setTimeout(r, 20));

  beforeAll(async () => {
    const app = new Hono();
    app.use('*', async (c, next) => {
      await next();
      c.res.headers.set('x-after', 'set after the handler');
      if (c.req.path === '/replaced') c.res = c.json({ replaced: true }, 409);
    });
    const route = (c: Context) =>
      sseResponse(c, (sse) =>
        produce(sse).then(
          () => void (seen.ended = 'done'),
          (e) => {
            seen.ended = (e as Error).name;
            throw e;
          },
        ),
      );
    app.get('/events', route);
    app.get('/replaced', route);
    ({ server } = await listen(app.fetch, { port: 0, hostname: '127.0.0.1' }));
    url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  afterAll(() => new Promise<void>((done) => server.close(() => done())));

  const start = (p: (sse: SseWriter, s: typeof seen) => Promise<void>) => {
    seen = { written: 0 };
    produce = (sse) => p(sse, seen);
  };

  it('streams the events in order, with the headers the middlewares set after the handler', async () => {
    start(async (sse) => {
      for (const data of ['{"a":1}', '{"b":"x y"}', '[DONE]']) await sse.writeSSE({ data });
    });
    const res = await fetch(`${url}/events`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    expect(res.headers.get('cache-control')).toBe('no-cache');
    expect(res.headers.get('x-after')).toBe('set after the handler');
    expect([...res.headers.keys()].filter((k) => k.startsWith('x-versa'))).toEqual([]);
    expect(await res.text()).toBe('data: {"a":1}\n\ndata: {"b":"x y"}\n\ndata: [DONE]\n\n');
    await settle();
    expect(seen.ended).toBe('done');
  });

  it('holds the producer while the client reads nothing, and lets it finish once the client reads', async () => {
    const chunk = 'x'.repeat(64 * 1024);
    const events = 2000; // 128 MB: far more than the socket buffers hold
    start(async (sse, s) => {
      for (let i = 0; i < events; i++) {
        await sse.writeSSE({ data: chunk });
        s.written++;
      }
    });
    const socket = connect(Number(new URL(url).port), '127.0.0.1');
    socket.pause();
    socket.write('GET /events HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n');
    await new Promise((r) => setTimeout(r, 300));
    expect(seen.written).toBeGreaterThan(0);
    expect(seen.written).toBeLessThan(events / 2);
    let bytes = 0;
    socket.on('data', (d: Buffer) => (bytes += d.length));
    socket.resume();
    await new Promise<void>((done) => {
      const check = setInterval(() => {
        if (!seen.ended) return;
        clearInterval(check);
        done();
      }, 10);
    });
    expect(seen).toEqual({ written: events, ended: 'done' });
    await settle();
    expect(bytes).toBeGreaterThan(events * chunk.length);
    socket.destroy();
  });

  it("rejects the producer's next write once the client has left", async () => {
    start(async (sse, s) => {
      for (;;) {
        await sse.writeSSE({ data: 'tick' });
        s.written++;
        await new Promise((r) => setTimeout(r, 5));
      }
    });
    const abort = new AbortController();
    const res = await fetch(`${url}/events`, { signal: abort.signal });
    const reader = res.body!.getReader();
    await reader.read();
    abort.abort();
    await new Promise((r) => setTimeout(r, 100));
    expect(seen.ended).toBe('ClientGone');
  });

  it('a response replaced by a middleware is the one sent, and the dropped stream stops its producer', async () => {
    start(async (sse, s) => {
      for (;;) {
        await sse.writeSSE({ data: 'tick' });
        s.written++;
      }
    });
    const res = await fetch(`${url}/replaced`);
    expect(res.status).toBe(409);
    expect(await res.json()).toEqual({ replaced: true });
    await settle();
    expect(seen.ended).toBe('ClientGone');
    expect(seen.written).toBe(0);
  });
});
