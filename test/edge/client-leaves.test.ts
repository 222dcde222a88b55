import { and, eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { events } from '../../registry/schema.ts';
import { until } from '../helpers/experiments.ts';
import { startProduct, type TestProduct } from '../helpers/product.ts';

/**
 * A client that leaves mid-stream (the edge's Node server writes its events straight to the socket)
 * stops its generation: the edge's next write fails, the node's request is aborted and its row
 * freed, and the usage event says the client left.
 */
describe('a client that leaves a streamed completion', () => {
  let product: TestProduct;
  beforeAll(async () => {
    product = await startProduct();
  }, 120_000);
  afterAll(() => product?.close());

  it('frees the node and records client_disconnected', async () => {
    const abort = new AbortController();
    const res = await product.registry.fetch('/v1/completions', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'stories260k',
        prompt: 'Once upon a time',
        max_tokens: 480,
        min_tokens: 480, // no early end of sequence: the generation outlasts the client
        temperature: 0,
        stream: true,
      }),
      signal: abort.signal,
    });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    const first = new TextDecoder().decode((await reader.read()).value);
    const completionId = /"id":"([^"]+)"/.exec(first)![1];
    expect(product.compute.state.inflight).toBe(1);
    abort.abort();

    await until(async () => product.compute.state.inflight === 0, 5000);
    const db = product.registry.registry.db;
    await until(async () => {
      const [usage] = await db
        .select()
        .from(events)
        .where(and(eq(events.completionId, completionId), eq(events.type, 'usage')));
      return usage?.data?.error === 'client_disconnected';
    }, 5000);
    const [usage] = await db
      .select()
      .from(events)
      .where(and(eq(events.completionId, completionId), eq(events.type, 'usage')));
    expect((usage.data as { completion_tokens: number }).completion_tokens).toBeLessThan(480);
  });
});
