import { mkdtempSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listen } from '../../src/http/listen.ts';
import { startNodeServer, type NodeServer } from '../../src/edge/server-node.ts';
import { startWorkerRegistry, type TestWorker } from '../helpers/registry.ts';

/**
 * Requests without a valid key cost the edge nothing: they are answered 401 from their headers,
 * before any of the body is read (whatever the content type), and the connection is closed rather
 * than held open by a body that trickles in. Every body but the adapter upload is bounded, by route.
 * Real sockets against the Node edge; the body is sent (if at all) only after the answer came.
 * The app's part (key first, limits by route) is checked in the Worker too.
 */
const KEY = `vsk_keyless-${crypto.randomUUID()}`;
const MiB = 1024 * 1024;
const HUGE = 300 * MiB;

interface Connection {
  socket: Socket;
  /** Everything the server sent, once it closed the connection (or a note that it did not). */
  closed: Promise<string>;
}

/** Opens a connection and sends `head` (request line and headers): no body yet. */
async function send(port: number, head: string): Promise<Connection> {
  const socket = connect(port, '127.0.0.1');
  await new Promise<void>((done) => socket.once('connect', () => done()));
  let received = '';
  socket.on('data', (chunk) => (received += chunk.toString('latin1')));
  socket.on('error', () => {}); // a reset after the answer is fine: `closed` reports what came
  const closed = new Promise<string>((done) => {
    socket.once('close', () => done(received));
    // Liveness, not performance: a connection still open after this long is the failure being tested.
    setTimeout(() => done(`still open after 8 s; received so far: ${JSON.stringify(received)}`), 8000).unref();
  });
  socket.write(head);
  return { socket, closed };
}

const head = (method: string, path: string, headers: Record<string, string | number>) =>
  `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n` +
  Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('') +
  '\r\n';

/** The status, headers (lower-cased names) and JSON body of a raw HTTP/1.1 response. */
function parse(raw: string): { status: number; headers: Record<string, string>; body: { error?: { code: string } } } {
  const [top, ...rest] = raw.split('\r\n\r\n');
  const [statusLine, ...lines] = top.split('\r\n');
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(statusLine)?.[1]);
  if (!status) throw new Error(`not an HTTP response: ${raw.slice(0, 200)}`);
  const headers = Object.fromEntries(
    lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]),
  );
  const text = rest.join('\r\n\r\n');
  const body = headers['transfer-encoding'] === 'chunked' ? text.split('\r\n')[1] : text;
  return { status, headers, body: headers['content-type']?.startsWith('application/json') ? JSON.parse(body) : {} };
}

/** Sends one byte of body every 20 ms until the server closes the connection; stop() says how many went. */
function trickle(socket: Socket, chunked = false): () => number {
  let bytes = 0;
  const timer = setInterval(() => {
    if (socket.destroyed) return;
    socket.write(chunked ? '1\r\nx\r\n' : 'x');
    bytes++;
  }, 20);
  socket.once('close', () => clearInterval(timer));
  return () => (clearInterval(timer), bytes);
}

describe('requests without a valid key', () => {
  let edge: NodeServer;
  beforeAll(async () => {
    edge = await startNodeServer({
      port: 0,
      home: mkdtempSync(join(tmpdir(), 'versa-keyless-')),
      apiKey: KEY,
      deps: { generation: { nodes: {} } },
    });
  });
  afterAll(() => edge?.close());

  it.each([
    ['/v1/chat/completions', 'multipart/form-data; boundary=z'],
    ['/v1/completions', 'application/json'],
    ['/v1/adapters/x/versions', 'multipart/form-data; boundary=z'], // the streaming upload
    ['/v1/models', 'application/json'],
  ])('a keyless 300 MB body to %s (%s) is answered 401 before any of it is sent, and closed', async (path, type) => {
    const c = await send(edge.port, head('POST', path, { 'content-type': type, 'content-length': HUGE }));
    const res = parse(await c.closed);
    expect(res.status).toBe(401);
    expect(res.body.error?.code).toBe('missing_api_key');
    expect(res.headers.connection).toBe('close');
  });

  it('a body with an unknown key is answered 401 from the headers (chunked, nothing sent)', async () => {
    const c = await send(
      edge.port,
      head('POST', '/v1/chat/completions', {
        authorization: 'Bearer vsk_not-a-key',
        'content-type': 'application/json',
        'transfer-encoding': 'chunked',
      }),
    );
    const res = parse(await c.closed);
    expect(res.status).toBe(401);
    expect(res.body.error?.code).toBe('invalid_api_key');
  });

  it('a keyless body sent in full is cut off: the edge accepts a small part of 300 MB', async () => {
    const c = await send(
      edge.port,
      head('POST', '/v1/chat/completions', {
        'content-type': 'multipart/form-data; boundary=z',
        'content-length': HUGE,
      }),
    );
    const chunk = Buffer.alloc(MiB, 0x61);
    let sent = 0;
    while (sent < HUGE && !c.socket.destroyed) {
      const more = c.socket.write(chunk);
      sent += chunk.length;
      if (!more) await new Promise((done) => (c.socket.once('drain', done), c.socket.once('close', done)));
    }
    const raw = await c.closed;
    // What the kernel took from us before the edge closed: socket buffers, not the body.
    expect(c.socket.bytesWritten).toBeLessThan(32 * MiB);
    if (raw) expect(parse(raw).status).toBe(401); // the answer can be lost to the reset that closes an unread body
  });

  it.each([
    ['a keyless JSON body', {}, false],
    ['a keyless chunked body', {}, true],
    ['a chunked body with an unknown key', { authorization: 'Bearer vsk_nope' }, true],
  ])('%s trickled one byte at a time gets its 401 and the connection is closed', async (_, auth, chunked) => {
    const c = await send(
      edge.port,
      head('POST', '/v1/completions', {
        ...auth,
        'content-type': 'application/json',
        ...(chunked ? { 'transfer-encoding': 'chunked' } : { 'content-length': 1_000_000 }),
      }),
    );
    const stop = trickle(c.socket, chunked);
    const res = parse(await c.closed);
    stop();
    expect(res.status).toBe(401);
  });

  it('a keyless GET whose body trickles is answered and closed (no body is read on any route)', async () => {
    const c = await send(edge.port, head('GET', '/healthz', { 'content-length': 1_000_000 }));
    const stop = trickle(c.socket);
    const res = parse(await c.closed);
    stop();
    expect(res.status).toBe(200);
    expect(res.headers.connection).toBe('close');
  });

  it('an authenticated body over the limit is a 413 JSON error from its headers, whatever its type', async () => {
    for (const type of ['application/json', 'multipart/form-data; boundary=z', 'text/plain']) {
      const c = await send(
        edge.port,
        head('POST', '/v1/chat/completions', {
          authorization: `Bearer ${KEY}`,
          'content-type': type,
          'content-length': HUGE,
        }),
      );
      const res = parse(await c.closed);
      expect(res.status, type).toBe(413);
      expect(res.body.error?.code).toBe('payload_too_large');
    }
  });

  it('an authenticated chunked body is read only up to the limit, then refused 413', async () => {
    const c = await send(
      edge.port,
      head('POST', '/v1/models', {
        authorization: `Bearer ${KEY}`,
        'content-type': 'application/json',
        'transfer-encoding': 'chunked',
      }),
    );
    const chunk = `${(256 * 1024).toString(16)}\r\n${'x'.repeat(256 * 1024)}\r\n`;
    for (let i = 0; i < 8 && !c.socket.destroyed; i++) c.socket.write(chunk); // 2 MiB, over the 1 MiB limit
    const res = parse(await c.closed);
    expect(res.status).toBe(413);
    expect(res.body.error?.code).toBe('payload_too_large');
  });
});

describe('the Node server: a total deadline for requests without credentials', () => {
  it('a keyless request still arriving at the deadline is closed; one with credentials is not', async () => {
    // A handler that reads the whole body before answering, as a route that streams an upload does.
    const { server, port } = await listen(async (req) => new Response(String((await req.arrayBuffer()).byteLength)), {
      port: 0,
      hostname: '127.0.0.1',
      keylessRequestTimeoutMs: 300,
    });
    try {
      const keyless = await send(port, head('POST', '/', { 'content-length': 1_000_000 }));
      const stop = trickle(keyless.socket);
      expect(await keyless.closed).toBe(''); // closed unanswered: the request never finished arriving
      stop();

      const keyed = await send(
        port,
        head('POST', '/', { authorization: 'Bearer x', connection: 'close', 'content-length': 2000 }),
      );
      const stopKeyed = trickle(keyed.socket);
      await new Promise((done) => setTimeout(done, 900)); // three deadlines
      expect(keyed.socket.destroyed).toBe(false);
      keyed.socket.write('x'.repeat(2000 - stopKeyed()));
      const answer = await keyed.closed;
      expect(parse(answer).status).toBe(200);
      expect(answer.endsWith('\r\n\r\n2000')).toBe(true);
    } finally {
      server.close();
    }
  });
});

describe('the same app in the Worker (workerd): the key before the body, every body bounded by route', () => {
  let worker: TestWorker;
  beforeAll(async () => {
    worker = await startWorkerRegistry();
  }, 120_000);
  afterAll(() => worker?.close());

  const post = (path: string, body: BodyInit, key: string | null, type = 'multipart/form-data; boundary=z') =>
    worker.fetch(path, { method: 'POST', headers: { 'content-type': type }, body, key, duplex: 'half' } as RequestInit);

  it('a keyless body is 401, an authenticated one over the limit 413, whatever its content type', async () => {
    const keyless = await post('/v1/chat/completions', 'x'.repeat(64 * 1024), null);
    expect(keyless.status).toBe(401);
    expect((await keyless.json()).error.code).toBe('missing_api_key');
    const big = await post('/v1/chat/completions', new Uint8Array(2 * MiB), worker.adminKey);
    expect(big.status).toBe(413);
    expect((await big.json()).error.code).toBe('payload_too_large');
  });

  it('a streamed (chunked) body over the limit is refused 413 too', async () => {
    const chunks = new ReadableStream<Uint8Array>({
      start(c) {
        for (let i = 0; i < 8; i++) c.enqueue(new Uint8Array(256 * 1024));
        c.close();
      },
    });
    const res = await post('/v1/models', chunks, worker.adminKey, 'application/json');
    expect(res.status).toBe(413);
  });
});
