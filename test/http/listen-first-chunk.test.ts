import { connect } from 'node:net';
import { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ServerType } from '@hono/node-server';
import { listen } from '../../src/http/listen.ts';

/** `listen()` answering every request with an event stream that `produce` writes. */
function serveStream(produce: (send: (text: string) => void, close: () => void) => void) {
  const body = () =>
    new ReadableStream<Uint8Array>({
      start(controller) {
        produce(
          (text) => controller.enqueue(new TextEncoder().encode(text)),
          () => controller.close(),
        );
      },
    });
  const headers = { 'content-type': 'text/event-stream' };
  return listen(() => new Response(body(), { headers }), { port: 0, hostname: '127.0.0.1' });
}

/**
 * A streamed response's headers leave with its first chunk, in one write: a reader on 127.0.0.1 is
 * woken once for both (the edge's first token, the node's), not first for the headers alone.
 */
describe('listen: headers with the first chunk', () => {
  let server: ServerType;
  let port: number;
  beforeAll(async () => {
    ({ server, port } = await serveStream((send, close) => {
      // The chunk comes a little after the Response: headers written at once would arrive alone.
      setTimeout(() => {
        send('data: first\n\n');
        close();
      }, 50);
    }));
  });
  afterAll(() => new Promise<void>((done) => server.close(() => done())));

  it('sends the status line, the headers and the first chunk in the first read', async () => {
    const socket = connect(port, '127.0.0.1');
    socket.write(`GET / HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer x\r\n\r\n`);
    const first = await new Promise<string>((done) => socket.once('data', (d) => done(String(d))));
    socket.destroy();
    expect(first).toMatch(/^HTTP\/1\.1 200/);
    expect(first).toContain('\r\n\r\n');
    expect(first).toContain('data: first');
  });
});

/**
 * A written chunk goes to the socket at once, though the thread stays busy in promise callbacks
 * after it: Node's HTTP response holds each write corked until the next tick, which comes only once
 * every pending promise callback has run (on the edge: the rest of a short generation, its usage
 * and events, ahead of the first token). The reader runs in a worker thread, with its own clock.
 */
describe('listen: a chunk leaves when written', () => {
  let server: ServerType;
  let port: number;
  let spunUntil = 0;
  const SPIN_MS = 300;
  beforeAll(async () => {
    ({ server, port } = await serveStream((send, close) => {
      send('data: first\n\n');
      void (async () => {
        // Promise callbacks back to back, as a producer that goes on without yielding to I/O.
        const end = Date.now() + SPIN_MS;
        while (Date.now() < end) await Promise.resolve();
        spunUntil = Date.now();
        send('data: second\n\n');
        close();
      })();
    }));
  });
  afterAll(() => new Promise<void>((done) => server.close(() => done())));

  it('the first chunk arrives while the producer is still busy', async () => {
    const reader = new Worker(
      `const { connect } = require('node:net');
       const { parentPort, workerData } = require('node:worker_threads');
       const socket = connect(workerData.port, '127.0.0.1');
       socket.write('GET / HTTP/1.1\\r\\nhost: 127.0.0.1\\r\\nauthorization: Bearer x\\r\\n\\r\\n');
       let text = '';
       let firstAt = 0;
       socket.on('data', (d) => {
         text += d;
         if (!firstAt && text.includes('data: first')) firstAt = Date.now();
         if (text.includes('data: second')) { parentPort.postMessage({ firstAt, text }); socket.destroy(); }
       });`,
      { eval: true, workerData: { port } },
    );
    const seen = await new Promise<{ firstAt: number; text: string }>((done, fail) => {
      reader.once('message', done);
      reader.once('error', fail);
    });
    await reader.terminate();
    expect(seen.text).toContain('data: second');
    expect(spunUntil - seen.firstAt).toBeGreaterThan(SPIN_MS / 2);
  });
});
