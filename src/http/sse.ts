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
 * rejects, so the producer stops. The data must be one line, as JSON is. On Node's server
 * (listen.ts) the events skip web streams altogether: see DirectEvents.
 */
export function sseResponse(c: Context, produce: (sse: SseWriter) => Promise<void>): Response {
  c.header('content-type', 'text/event-stream');
  c.header('cache-control', 'no-cache');
  c.header('connection', 'keep-alive');
  if ((c.env as Bindings | undefined)?.[DIRECT]) return directResponse(c, produce);
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
  run(produce, sse, () => {
    if (!gone) controller.close();
  });
  return c.newResponse(body);
}

function run(produce: (sse: SseWriter) => Promise<void>, sse: SseWriter, close: () => void): void {
  void produce(sse)
    .catch((e) => {
      if (!(e instanceof ClientGone)) console.error('versa: an event stream failed:', e);
    })
    .finally(close);
}

/** What Node's server writes a response to: its ServerResponse has all of it. */
interface DirectSocket {
  write(chunk: string): boolean;
  end(): unknown;
  once(event: 'drain' | 'close', listener: () => void): unknown;
  readonly destroyed: boolean;
}

/** The request bindings' keys: Node's server offers direct events (DIRECT), the response's stream is left at STREAM. */
const DIRECT = Symbol('versa.sse.direct');
const STREAM = Symbol('versa.sse.stream');
type Bindings = { [DIRECT]?: true; [STREAM]?: DirectEvents };
/** Marks the Response whose stream is at STREAM (a header survives hono copying a Response); removed before sending. */
const DIRECT_HEADER = 'x-versa-direct-events';

/**
 * An event stream that Node's server (listen.ts) writes straight to the socket: the events wait
 * here until the Response has come back through the middlewares (its headers final), then each
 * write goes to the socket, waiting on `drain` when the socket's buffer is full. A web stream, its
 * reader and @hono/node-server's copying loop cost each generation about 0.1 ms before its first
 * token on the edge. The backpressure is the web stream's: one event waits unsent at most.
 */
class DirectEvents {
  private queued: string[] = [];
  private socket?: DirectSocket;
  private ended = false;
  gone = false;
  private wake?: () => void;

  async write(text: string): Promise<void> {
    if (this.socket?.destroyed) this.leave();
    if (this.gone) throw new ClientGone('the client left');
    if (!this.socket) {
      this.queued.push(text);
      await new Promise<void>((done) => (this.wake = done));
    } else if (!this.socket.write(text)) {
      await new Promise<void>((done) => {
        this.wake = done;
        this.socket!.once('drain', () => this.resume());
      });
    }
    if (this.gone) throw new ClientGone('the client left');
  }

  end(): void {
    this.ended = true;
    if (this.socket && !this.gone) this.socket.end();
  }

  /** The Response's headers are written: the events queued so far go out (the first with them). */
  attach(socket: DirectSocket): void {
    this.socket = socket;
    socket.once('close', () => this.leave());
    if (socket.destroyed) return this.leave();
    for (const text of this.queued) socket.write(text);
    this.queued = [];
    if (this.ended) socket.end();
    this.resume();
  }

  /** The client left, or the Response never got to the socket: the producer's next write rejects. */
  leave(): void {
    this.gone = true;
    this.resume();
  }

  private resume(): void {
    this.wake?.();
    this.wake = undefined;
  }
}

function directResponse(c: Context, produce: (sse: SseWriter) => Promise<void>): Response {
  const events = new DirectEvents();
  run(produce, { writeSSE: ({ data }) => events.write(`data: ${data}\n\n`) }, () => events.end());
  (c.env as Bindings)[STREAM] = events;
  c.header(DIRECT_HEADER, '1');
  return c.newResponse(null);
}

/**
 * For Node's server, once the app answered: the direct event stream `res` stands for, with its
 * headers (the marker removed), or undefined for any other response. A stream left behind (the app
 * answered with another response) is told its client is gone.
 */
export function directEventsOf(
  bindings: object,
  res: Response,
): { events: DirectEvents; headers: Record<string, string> } | undefined {
  const events = (bindings as Bindings)[STREAM];
  if (!events) return undefined;
  // hono copies a replaced Response's headers onto its replacement (the marker too, not the content type)
  const marked = res.headers.get(DIRECT_HEADER) === '1';
  if (marked) res.headers.delete(DIRECT_HEADER);
  if (!marked || res.headers.get('content-type') !== 'text/event-stream') {
    events.leave();
    return undefined;
  }
  const headers: Record<string, string> = {};
  res.headers.forEach((value, name) => (headers[name] = value));
  return { events, headers };
}

/** Node's server offers direct event streams for this request (listen.ts). */
export function offerDirectEvents(bindings: object): void {
  (bindings as Bindings)[DIRECT] = true;
}
