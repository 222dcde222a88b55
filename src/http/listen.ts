import { createServer, type AddressInfo } from 'node:net';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { serve, type Http2Bindings, type HttpBindings, type ServerType } from '@hono/node-server';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import { directEventsOf, offerDirectEvents } from './sse.ts';

export interface ListenOptions {
  port: number;
  hostname: string;
  /** A connection that sends and receives nothing this long is closed (uploads and streams alike). */
  idleTimeoutMs?: number;
  /** The request's headers must arrive within this. */
  headersTimeoutMs?: number;
  /** Serve HTTPS with this certificate (chain) and private key, both PEM. */
  tls?: { cert: string | Buffer; key: string | Buffer };
  /** A request without credentials (no Authorization header) must arrive whole within this (default 10 s). */
  keylessRequestTimeoutMs?: number;
}

/**
 * Serves a Hono app on Node with the time limits a public server needs: a client that stops
 * sending mid-upload (or never finishes its headers) does not hold a socket and its buffers
 * forever; a slow but live upload with credentials is never cut (no total time limit, only
 * idleness), while a request without them gets a total deadline. A response that leaves before its
 * request body has arrived (a refusal: 401, 413) ends the connection instead of reading the rest.
 */
export async function listen(
  fetch: (request: Request, env: HttpBindings) => Response | Promise<Response>,
  o: ListenOptions,
): Promise<{ server: ServerType; port: number }> {
  const deadline = o.keylessRequestTimeoutMs ?? 10_000;
  const guarded = (request: Request, env: HttpBindings | Http2Bindings) => {
    const { incoming, outgoing } = env as HttpBindings; // HTTP/1.1: no HTTP/2 server is made here
    closeIfBodyUnread(incoming, outgoing);
    writeThrough(outgoing);
    if (!incoming.headers.authorization) closeAtDeadline(incoming, outgoing, deadline);
    offerDirectEvents(env);
    const res = fetch(request, env as HttpBindings);
    return res instanceof Promise ? res.then((r) => sent(r, env, outgoing)) : sent(res, env, outgoing);
  };
  const server: ServerType = await new Promise((ready, fail) => {
    const https = o.tls ? { createServer: createHttpsServer, serverOptions: { cert: o.tls.cert, key: o.tls.key } } : {};
    const s = serve({ fetch: guarded, port: o.port, hostname: o.hostname, ...https }, () => ready(s));
    s.once('error', (e) => fail(listenError(e, o)));
  });
  const http = server as Server;
  http.setTimeout(o.idleTimeoutMs ?? 120_000, (socket) => socket.destroy());
  http.headersTimeout = o.headersTimeoutMs ?? 30_000;
  http.requestTimeout = 0;
  return { server, port: (server.address() as AddressInfo).port };
}

/**
 * An event stream (sse.ts) is written here, straight to the socket once its headers are final; any
 * other response is @hono/node-server's to write.
 */
function sent(res: Response, bindings: object, outgoing: ServerResponse): Response {
  const direct = directEventsOf(bindings, res);
  if (!direct) return res;
  outgoing.writeHead(res.status, direct.headers);
  direct.events.attach(outgoing);
  return RESPONSE_ALREADY_SENT;
}

/**
 * Sends `Connection: close` with a response whose request has not fully arrived: the server is done
 * with it and will not read (or drain) the rest, so the socket closes once the answer is out.
 */
function closeIfBodyUnread(incoming: IncomingMessage, outgoing: ServerResponse): void {
  const writeHead = outgoing.writeHead;
  outgoing.writeHead = function (this: ServerResponse, ...args: Parameters<typeof writeHead>) {
    if (!incoming.complete) this.shouldKeepAlive = false;
    return writeHead.apply(this, args);
  } as typeof writeHead;
}

/**
 * A streamed response's headers leave with its first chunk, in one write: @hono/node-server flushes
 * them alone first, which on 127.0.0.1 costs the reader a second wake-up (and a write) before the
 * first token. Every stream served here has its first chunk ready when its Response is returned
 * (the edge and the compute node answer once the first token is there), so nothing waits longer.
 * And every write leaves at once: Node's HTTP response corks the socket at each write until the next
 * tick, which comes only once every pending promise callback has run (on the edge: the rest of a
 * short generation and its usage, ahead of the first token's bytes; 0.25-0.3 ms here).
 */
function writeThrough(outgoing: ServerResponse): void {
  outgoing.flushHeaders = () => {};
  const write = outgoing.write;
  outgoing.write = function (this: ServerResponse, ...args: Parameters<typeof write>) {
    const ok = write.apply(this, args);
    this.socket?.uncork();
    return ok;
  } as typeof write;
}

/** Destroys the connection of a request still arriving `ms` after it began (its answer, if any, is done). */
function closeAtDeadline(incoming: IncomingMessage, outgoing: ServerResponse, ms: number): void {
  const timer = setTimeout(() => {
    if (!incoming.complete) incoming.socket.destroy();
  }, ms);
  timer.unref();
  outgoing.once('close', () => clearTimeout(timer));
}

/** The one-line reason a port cannot be served on, in place of a bare EADDRINUSE/EACCES stack trace. */
function listenError(e: Error & { code?: string }, o: { port: number; hostname: string }): Error {
  const where = `${o.hostname}:${o.port}`;
  if (e.code === 'EADDRINUSE')
    return new Error(`port ${o.port} is already in use (${where}): pick another with --port`);
  if (e.code === 'EACCES') return new Error(`not allowed to listen on ${where} (ports below 1024 need privileges)`);
  return new Error(`cannot listen on ${where}: ${e.message}`);
}

/**
 * Fails now, in one line, if `port` cannot be listened on: called before slow start-up work (loading a
 * model) so that a port in use is reported in milliseconds, not after it. Port 0 (any free) always passes.
 */
export async function assertPortFree(port: number, hostname: string): Promise<void> {
  if (port === 0) return;
  await new Promise<void>((done, fail) => {
    const probe = createServer();
    probe.once('error', (e) => fail(listenError(e, { port, hostname })));
    probe.listen(port, hostname, () => probe.close(() => done()));
  });
}

/** A port from a setting (e.g. env PORT): an integer 0-65535, else a one-line error naming the setting. */
export function portSetting(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined || value === '') return fallback;
  const port = Number(value);
  if (!/^\d+$/.test(value.trim()) || port > 65535)
    throw new Error(`${name} must be a port number (0-65535), not "${value}"`);
  return port;
}
