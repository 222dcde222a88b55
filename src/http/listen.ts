import { createServer, type AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { serve, type ServerType } from '@hono/node-server';

export interface ListenOptions {
  port: number;
  hostname: string;
  /** A connection that sends and receives nothing this long is closed (uploads and streams alike). */
  idleTimeoutMs?: number;
  /** The request's headers must arrive within this. */
  headersTimeoutMs?: number;
}

/**
 * Serves a Hono app on Node with the time limits a public server needs: a client that stops
 * sending mid-upload (or never finishes its headers) does not hold a socket and its buffers
 * forever; a slow but live upload is never cut (no total time limit, only idleness).
 */
export async function listen(
  fetch: (request: Request) => Response | Promise<Response>,
  o: ListenOptions,
): Promise<{ server: ServerType; port: number }> {
  const server: ServerType = await new Promise((ready, fail) => {
    const s = serve({ fetch, port: o.port, hostname: o.hostname }, () => ready(s));
    s.once('error', (e) => fail(listenError(e, o)));
  });
  const http = server as Server;
  http.setTimeout(o.idleTimeoutMs ?? 120_000, (socket) => socket.destroy());
  http.headersTimeout = o.headersTimeoutMs ?? 30_000;
  http.requestTimeout = 0;
  return { server, port: (server.address() as AddressInfo).port };
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
