import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixture } from '../helpers/fixtures.ts';
import { EngineClient, type Generation } from '../../src/engine/worker/client.ts';
import { RequestError, type FinishReason, type TokenEvent } from '../../src/engine/generation/request.ts';
import { BatchPolicy, type Schedulable } from '../../src/engine/generation/policy.ts';

/**
 * n choices from one request: the prompt is prefilled once and each choice forks its cache row,
 * then samples on its own (seeds derived from the request's), in one batch with other requests.
 */
async function collect(g: Generation) {
  const events: TokenEvent[] = [];
  for await (const e of g) events.push(e);
  return { events, result: await g.result };
}

describe('n choices on stories260k (forked after one prefill)', () => {
  let engine: EngineClient;
  let prefilled = 0;
  beforeAll(async () => {
    // A small prefill chunk: the prompt takes several steps, while the forks wait for it.
    engine = await EngineClient.start({
      model: fixture('stories260k/model.bin'),
      threads: 2,
      maxBatch: 6,
      prefillChunk: 3,
      prefillChunkIdle: 3,
    });
    engine.onStep = (stats) => (prefilled += stats.prefillTokens);
  });
  afterAll(() => engine?.close());

  const prompt = 'Once upon a time, there was a little dog';

  it('greedy forks produce exactly the tokens of an unforked greedy run, from one prefill', async () => {
    const req = { prompt, maxTokens: 30, temperature: 0, ignoreEos: true };
    const single = await engine.generate(req).result;
    const promptTokens = single.promptTokens;
    prefilled = 0;
    const { events, result } = await collect(engine.generate({ ...req, n: 3 }));
    expect(prefilled).toBe(promptTokens); // the prompt ran once, not three times
    expect(result.choices?.map((c) => c.tokens)).toEqual([single.tokens, single.tokens, single.tokens]);
    expect(result.completionTokens).toBe(3 * single.completionTokens);
    expect(result.promptTokens).toBe(promptTokens);
    for (const index of [0, 1, 2]) {
      expect(events.filter((e) => (e.index ?? 0) === index).map((e) => e.token)).toEqual(single.tokens);
    }
  });

  it('sampled choices differ from each other, and the same seed gives the same choices', async () => {
    const req = { prompt, maxTokens: 40, temperature: 1, seed: 11, ignoreEos: true, n: 4 };
    const [a, b] = await Promise.all([engine.generate(req).result, engine.generate(req).result]);
    const tokens = a.choices!.map((c) => c.tokens);
    expect(b.choices!.map((c) => c.tokens)).toEqual(tokens);
    expect(new Set(tokens.map((t) => t.join())).size).toBe(4);
    // Choice 0 is what n = 1 gives for the seed.
    expect((await engine.generate({ ...req, n: 1 }).result).tokens).toEqual(tokens[0]);
  });

  it('each choice ends on its own: a stop string ends some, max_tokens the others', async () => {
    const { result } = await collect(
      engine.generate({ prompt, maxTokens: 60, temperature: 1, seed: 5, n: 5, stop: ['.'] }),
    );
    const reasons = result.choices!.map((c) => c.finishReason);
    expect(result.choices!.map((c) => c.index)).toEqual([0, 1, 2, 3, 4]);
    for (const c of result.choices!) {
      expect(c.completionTokens).toBe(c.tokens.length);
      if (c.finishReason === 'stop') expect(c.text).not.toContain('.');
    }
    expect(reasons).toContain('stop');
  });

  it('choices that end on their first token (max_tokens 1) still each get it, with their logprobs', async () => {
    const { events, result } = await collect(
      engine.generate({ prompt, maxTokens: 1, temperature: 1, seed: 9, n: 3, logprobs: 2 }),
    );
    expect(result.choices!.map((c) => [c.tokens.length, c.finishReason])).toEqual([
      [1, 'length'],
      [1, 'length'],
      [1, 'length'],
    ]);
    expect(events.map((e) => e.index ?? 0).sort()).toEqual([0, 1, 2]);
    for (const e of events) expect(e.top).toHaveLength(2);
  });

  it('cancelling the request ends every choice', async () => {
    const g = engine.generate({ prompt, maxTokens: 200, temperature: 1, ignoreEos: true, n: 3 });
    const it = g[Symbol.asyncIterator]();
    await it.next();
    g.cancel();
    const result = await g.result;
    expect(result.finishReason).toBe('cancelled');
    expect(result.choices?.map((c) => c.finishReason)).toEqual(['cancelled', 'cancelled', 'cancelled']);
  });

  it('requests with forks share the batch with other requests', async () => {
    const req = { prompt, maxTokens: 20, temperature: 0, ignoreEos: true };
    const single = await engine.generate(req).result;
    // 3 + 3 + 1 rows over a batch of 6: the last waits for rows, and every choice is still greedy.
    const results = await Promise.all(
      engine.generateMany([{ ...req, n: 3 }, { ...req, n: 3 }, req]).map((g) => g.result),
    );
    expect(results[0].choices!.map((c) => c.tokens)).toEqual([single.tokens, single.tokens, single.tokens]);
    expect(results[1].choices!.map((c) => c.tokens)).toEqual([single.tokens, single.tokens, single.tokens]);
    expect(results[2].tokens).toEqual(single.tokens);
  });

  it('refuses n over 8, and over the batch, naming n', async () => {
    for (const n of [0, 9, 7]) {
      const e = await engine.generate({ prompt, n }).result.catch((x: unknown) => x);
      expect(e, String(n)).toBeInstanceOf(RequestError);
      expect((e as RequestError).param).toBe('n');
    }
  });
});

/** A sequence as the policy sees it, with forks: a prompt of `length` tokens, then one token per step. */
class Seq implements Schedulable {
  row = -1;
  cached = 0;
  finish?: FinishReason;
  readonly adapter = undefined;
  readonly forks: Seq[];
  readonly prompt: number[];
  constructor(
    readonly id: string,
    length: number,
    forks = 0,
  ) {
    this.prompt = Array.from({ length }, (_, i) => 100 + i);
    this.forks = Array.from({ length: forks }, () => new Seq(id, length));
  }
  get prefilling(): boolean {
    return this.cached < this.prompt.length;
  }
  nextInput(chunk: number): number[] {
    return this.prefilling ? this.prompt.slice(this.cached, this.cached + chunk) : [7];
  }
}

describe('batch policy: forks', () => {
  it('a request joins with rows kept for its forks, which copy its row once the prompt is in', () => {
    const policy = new BatchPolicy<Seq>({ maxBatch: 4, prefillChunk: 4, prefillChunkIdle: 4 });
    const a = new Seq('a', 6, 2);
    const [fork1, fork2] = a.forks;
    const b = new Seq('b', 2, 1);
    policy.add(a);
    policy.add(b);
    // a takes 3 rows of 4: b (2 rows) waits, though only one row runs.
    const first = policy.plan();
    expect([policy.active, policy.queued]).toEqual([1, 1]);
    expect(first.prefill?.rows.map((r) => [r.row, r.tokens.length])).toEqual([[0, 4]]);
    a.cached += 4;
    expect(policy.end().cache).toEqual([]);
    const second = policy.plan();
    expect(second.prefill?.rows.map((r) => [r.row, r.position, r.tokens.length])).toEqual([[0, 4, 2]]);
    a.cached += 2;
    fork1.cached = fork2.cached = 6; // what Scheduler.execute does: they sample from a's logits
    const end = policy.end();
    // The forks take rows 1 and 2, copies of a's row, and decode with it from the next step.
    expect(end.cache).toEqual([
      { kind: 'copy', from: 0, to: 1 },
      { kind: 'copy', from: 0, to: 2 },
    ]);
    expect([a.forks.length, fork1.row, fork2.row, policy.active]).toEqual([0, 1, 2, 3]);
    const third = policy.plan();
    expect(third.decode.flatMap((run) => run.rows.map((r) => [r.row, r.position]))).toEqual([
      [0, 6],
      [1, 6],
      [2, 6],
    ]);
    expect(policy.queued).toBe(1); // b still needs 2 rows
    // Cancelling the request's id ends every choice.
    policy.cancel('a');
    const next = policy.plan();
    expect(new Set(next.leave.left)).toEqual(new Set([a, fork1, fork2]));
    expect(next.prefill?.seqs).toEqual([b]); // the rows are free: b joins
  });
});
