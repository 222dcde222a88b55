import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ServerType } from '@hono/node-server';
import { listen } from '../../src/http/listen.ts';

/**
 * A streamed response's headers leave with its first chunk, in one write: a reader on 127.0.0.1 is
 * woken once for both (the edge's first token, the node's), not first for the headers alone.
 */
describe('listen: headers with the first chunk', () => {
  let server: ServerType;
  let port: number;
  beforeAll(async () => {
    ({ server, port } = await listen(
      () =>
        new Response(
          new ReadableStream<Uint8Array>({
            start(controller) {
              // The chunk comes a little after the Response: headers written at once would arrive alone.
              setTimeout(() => {
                controller.enqueue(new TextEncoder().encode('data: first\n\n'));
                controller.close();
              }, 50);
            },
          }),
          { headers: { 'content-type': 'text/event-stream' } },
        ),
      { port: 0, hostname: '127.0.0.1' },
    ));
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
