import type { Context } from 'hono';

/** Writes one server-sent event whose data is one line (JSON, or `[DONE]`); rejects once the client is gone. */
export interface SseWriter {
  writeSSE(message: { data: string }): Promise<void>;
}

class ClientGone extends Error {
  override name = 'ClientGone';
}

/**
 * A `text/event-stream` response whose events `produce` writes. Hand-written instead of hono's
 * streamSSE, which sends each event through a TransformStream and a second ReadableStream (and an
 * HTML-escaping callback pass): here one ReadableStream is fed directly, still with backpressure
 * (a write waits while the consumer holds a chunk unread), and a write after the client left
 * rejects, so the producer stops. The data must be one line, as JSON is.
 */
export function sseResponse(c: Context, produce: (sse: SseWriter) => Promise<void>): Response {
  const encoder = new TextEncoder();
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  let gone = false;
  let wake: (() => void) | undefined;
  const resume = () => {
    wake?.();
    wake = undefined;
  };
  const body = new ReadableStream<Uint8Array>({
    start: (ctl) => void (controller = ctl),
    pull: resume,
    cancel: () => {
      gone = true;
      resume();
    },
  });
  const sse: SseWriter = {
    async writeSSE({ data }) {
      if (gone) throw new ClientGone('the client left');
      controller.enqueue(encoder.encode(`data: ${data}\n\n`));
      if ((controller.desiredSize ?? 1) <= 0) await new Promise<void>((done) => (wake = done));
      if (gone) throw new ClientGone('the client left');
    },
  };
  void produce(sse)
    .catch((e) => {
      if (!(e instanceof ClientGone)) console.error('versa: an event stream failed:', e);
    })
    .finally(() => {
      if (!gone) controller.close();
    });
  c.header('content-type', 'text/event-stream');
  c.header('cache-control', 'no-cache');
  c.header('connection', 'keep-alive');
  return c.newResponse(body);
}
