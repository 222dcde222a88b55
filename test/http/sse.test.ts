import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import { sseResponse, type SseWriter } from '../../src/http/sse.ts';

/** A response of sseResponse, with what its producer saw: how many writes resolved, and how it ended. */
async function served(produce: (sse: SseWriter, seen: { written: number; ended?: string }) => Promise<void>) {
  const seen: { written: number; ended?: string } = { written: 0 };
  const app = new Hono().get('/', (c) =>
    sseResponse(c, (sse) =>
      produce(sse, seen).then(
        () => void (seen.ended = 'done'),
        (e) => {
          seen.ended = (e as Error).name;
          throw e;
        },
      ),
    ),
  );
  return { res: await app.request('/'), seen };
}

const tick = () => new Promise((r) => setTimeout(r, 10));

describe('sseResponse', () => {
  it('streams each event as a data line, with the event-stream headers, and closes when done', async () => {
    const { res } = await served(async (sse) => {
      for (const data of ['{"a":1}', '{"b":"x y"}', '[DONE]']) await sse.writeSSE({ data });
    });
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    expect(res.headers.get('cache-control')).toBe('no-cache');
    expect(await res.text()).toBe('data: {"a":1}\n\ndata: {"b":"x y"}\n\ndata: [DONE]\n\n');
  });

  it('holds the producer while a chunk waits unread (backpressure)', async () => {
    const { res, seen } = await served(async (sse, s) => {
      for (let i = 0; i < 3; i++) {
        await sse.writeSSE({ data: String(i) });
        s.written++;
      }
    });
    await tick();
    expect(seen.written).toBe(0); // the first chunk is queued, unread: its write waits
    const reader = res.body!.getReader();
    await reader.read();
    await tick();
    expect(seen.written).toBe(1);
    while (!(await reader.read()).done);
    expect(seen).toEqual({ written: 3, ended: 'done' });
  });

  it('rejects the waiting write once the client cancels, so the producer stops', async () => {
    const { res, seen } = await served(async (sse, s) => {
      for (;;) {
        await sse.writeSSE({ data: 'tick' });
        s.written++;
      }
    });
    const reader = res.body!.getReader();
    await reader.read();
    await reader.cancel();
    await tick();
    expect(seen.ended).toBe('ClientGone');
    expect(seen.written).toBeLessThanOrEqual(2);
  });
});
