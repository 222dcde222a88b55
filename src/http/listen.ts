import type { AddressInfo } from 'node:net';
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
  const server: ServerType = await new Promise((ready) => {
    const s = serve({ fetch, port: o.port, hostname: o.hostname }, () => ready(s));
  });
  const http = server as Server;
  http.setTimeout(o.idleTimeoutMs ?? 120_000, (socket) => socket.destroy());
  http.headersTimeout = o.headersTimeoutMs ?? 30_000;
  http.requestTimeout = 0;
  return { server, port: (server.address() as AddressInfo).port };
}
