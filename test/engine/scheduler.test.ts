import { describe, expect, it } from 'vitest';
import type { Adapter } from '../../src/engine/adapters/read.ts';
import { StepExecutor, type StepRunner } from '../../src/engine/generation/executor.ts';
import type { Run } from '../../src/engine/generation/plan.ts';
import { BatchPolicy, type Schedulable, type SchedulerOptions } from '../../src/engine/generation/policy.ts';
import type { FinishReason } from '../../src/engine/generation/request.ts';
import type { RunRow } from '../../src/engine/runtime/runner.ts';

/** A sequence as the policy sees it: a prompt of `length` tokens, then one generated token per step. */
class FakeSeq implements Schedulable {
  row = -1;
  cached = 0;
  finish?: FinishReason;
  readonly prompt: number[];
  constructor(
    readonly id: string,
    length: number,
    readonly adapter: Adapter | undefined = undefined,
  ) {
    this.prompt = Array.from({ length }, (_, i) => 100 + i);
  }
  get prefilling(): boolean {
    return this.cached < this.prompt.length;
  }
  nextInput(chunk: number): number[] {
    return this.prefilling ? this.prompt.slice(this.cached, this.cached + chunk) : [7];
  }
}

const adapter = (id: string) => ({ id, kind: 'lora', modules: [] }) as unknown as Adapter;
const policyOf = (opts: Partial<SchedulerOptions> = {}) =>
  new BatchPolicy<FakeSeq>({ maxBatch: 8, prefillChunk: 4, prefillChunkIdle: 16, ...opts });

/** A run as [id, row, position, tokens fed], one per row. */
const shape = (run?: Run<FakeSeq>) =>
  run?.seqs.map((s, i) => [s.id, run.rows[i].row, run.rows[i].position, run.rows[i].tokens.length]);

/** One step where every run succeeds: the sequences take their tokens, `finished` stop, the step ends. */
function step(policy: BatchPolicy<FakeSeq>, finished: FakeSeq[] = []) {
  const plan = policy.plan();
  for (const run of [plan.decode, plan.prefill]) run?.seqs.forEach((s, i) => (s.cached += run.rows[i].tokens.length));
  for (const seq of finished) seq.finish = 'stop';
  return { plan, end: policy.end() };
}

describe('batch policy', () => {
  it('new requests join at the next step; short prompts share one prefill run', () => {
    const policy = policyOf();
    policy.add(new FakeSeq('a', 3));
    policy.add(new FakeSeq('b', 5));
    const plan = policy.plan();
    const late = new FakeSeq('c', 2);
    policy.add(late);
    // Idle: budget 16 at the longest prompt's length (5) holds both rows.
    expect(shape(plan.prefill)).toEqual([
      ['a', 0, 0, 3],
      ['b', 1, 0, 5],
    ]);
    expect(plan.decode).toBeUndefined();
    expect([late.row, policy.queued, policy.active]).toEqual([-1, 1, 2]);
    for (const [i, s] of plan.prefill!.seqs.entries()) s.cached += plan.prefill!.rows[i].tokens.length;
    expect(policy.end().cache).toEqual([]); // both finished their prompts in place: no moves
    const next = policy.plan();
    expect(shape(next.decode)).toEqual([
      ['a', 0, 3, 1],
      ['b', 1, 5, 1],
    ]);
    expect(shape(next.prefill)).toEqual([['c', 2, 0, 2]]);
  });

  it('decodes first, then chunks a prompt: prefillChunk while others decode, prefillChunkIdle when idle', () => {
    const policy = policyOf({ prefillChunk: 4, prefillChunkIdle: 16 });
    policy.add(new FakeSeq('a', 20));
    expect(shape(step(policy).plan.prefill)).toEqual([['a', 0, 0, 16]]);
    expect(shape(step(policy).plan.prefill)).toEqual([['a', 0, 16, 4]]);
    policy.add(new FakeSeq('b', 10));
    const runs = [1, 2, 3, 4].map(() => step(policy).plan).map((p) => [shape(p.decode), shape(p.prefill)]);
    expect(runs).toEqual([
      [[['a', 0, 20, 1]], [['b', 1, 0, 4]]],
      [[['a', 0, 21, 1]], [['b', 1, 4, 4]]],
      [[['a', 0, 22, 1]], [['b', 1, 8, 2]]],
      [
        [
          ['a', 0, 23, 1],
          ['b', 1, 10, 1],
        ],
        undefined,
      ],
    ]);
    // Two prompts of 3 while decoding: a chunk of 3 leaves room for one row in a budget of 4.
    policy.add(new FakeSeq('c', 3));
    policy.add(new FakeSeq('d', 3));
    expect(shape(step(policy).plan.prefill)).toEqual([['c', 2, 0, 3]]);
    expect(shape(step(policy).plan.prefill)).toEqual([['d', 3, 0, 3]]);
  });

  it('keeps at most maxBatch rows; the rest wait and join when a row leaves', () => {
    const policy = policyOf({ maxBatch: 2 });
    const [a, b, c] = ['a', 'b', 'c'].map((id) => new FakeSeq(id, 2));
    [a, b, c].forEach((s) => policy.add(s));
    expect(shape(step(policy).plan.prefill)).toEqual([
      ['a', 0, 0, 2],
      ['b', 1, 0, 2],
    ]);
    expect([policy.active, policy.queued, c.row]).toEqual([2, 1, -1]);
    const { end } = step(policy, [a]);
    // a leaves at once: b moves into its row, the cache may shrink to b's length + 1.
    expect(end.left).toEqual([a]);
    expect(end.cache).toEqual([
      { kind: 'move', from: 1, to: 0 },
      { kind: 'shrink', length: 4 },
    ]);
    const next = policy.plan();
    expect([shape(next.decode), shape(next.prefill)]).toEqual([[['b', 0, 3, 1]], [['c', 1, 0, 2]]]);
  });

  it('finished and cancelled rows leave at once, and both regions stay contiguous', () => {
    const policy = policyOf({ prefillChunk: 2 });
    const [a, b, c] = ['a', 'b', 'c'].map((id) => new FakeSeq(id, 2));
    [a, b, c].forEach((s) => policy.add(s));
    step(policy);
    const d = new FakeSeq('d', 10);
    policy.add(d);
    const { end } = step(policy, [a]); // rows a b c | d: a's gap takes c, c's gap takes d
    expect(end.cache.slice(0, 2)).toEqual([
      { kind: 'move', from: 2, to: 0 },
      { kind: 'move', from: 3, to: 2 },
    ]);
    expect([c.row, b.row, d.row, a.row]).toEqual([0, 1, 2, -1]);

    const queued = new FakeSeq('e', 2);
    policy.add(queued);
    expect(policy.cancel('e')).toBe(queued); // a queued request leaves without a row
    expect(policy.cancel('b')).toBeUndefined(); // a running one leaves at the next plan
    const plan = policy.plan();
    expect(plan.leave).toEqual({ left: [b], cache: [{ kind: 'move', from: 2, to: 1 }], release: [] });
    expect([shape(plan.decode), shape(plan.prefill)]).toEqual([[['c', 0, 3, 1]], [['d', 1, 2, 2]]]);
  });

  it('an adapter takes a bank slot with its first row and frees it with its last', () => {
    const policy = policyOf();
    const [x, y] = [adapter('x'), adapter('y')];
    const seq = (id: string, a?: Adapter) => new FakeSeq(id, 2, a);
    const [x1, x2, y1, base] = [seq('x1', x), seq('x2', x), seq('y1', y), seq('n')];
    [x1, x2, y1, base].forEach((s) => policy.add(s));
    const first = step(policy, [x1]);
    expect(first.plan.acquire).toEqual([x, y]);
    expect(first.plan.prefill!.rows.map((r) => r.adapter)).toEqual(['x', 'x', 'y', undefined]);
    expect(first.end.release).toEqual([]); // x2 still uses x
    expect(step(policy, [x2]).end.release).toEqual(['x']);
    policy.cancel('y1');
    const x3 = new FakeSeq('x3', 2, x);
    policy.add(x3);
    const plan = policy.plan();
    expect([plan.leave.release, plan.acquire]).toEqual([['y'], [x]]);
  });

  it('rows of a failed run leave, and the prefill run is chosen again', () => {
    const policy = policyOf({ prefillChunk: 2, prefillChunkIdle: 16 });
    const a = new FakeSeq('a', 2, adapter('x'));
    policy.add(a);
    step(policy);
    policy.add(new FakeSeq('b', 10));
    const plan = policy.plan();
    expect(shape(plan.prefill)).toEqual([['b', 1, 0, 2]]);
    const failed = policy.fail(plan.decode!.seqs);
    expect(failed).toEqual({ left: [a], cache: [{ kind: 'move', from: 1, to: 0 }], release: ['x'] });
    expect(shape(policy.prefill())).toEqual([['b', 0, 0, 10]]); // nothing decodes now: the idle budget
  });
});

describe('step executor', () => {
  it('applies cache operations in order, then releases, and runs the planned rows', async () => {
    const calls: string[] = [];
    const runner = {
      cache: {
        moveRow: (from: number, to: number) => calls.push(`move ${from}>${to}`),
        swapRows: (a: number, b: number) => calls.push(`swap ${a}<>${b}`),
        shrink: (length: number) => calls.push(`shrink ${length}`),
        clear: () => calls.push('clear'),
      },
      bank: {
        acquire: (a: Adapter) => calls.push(`acquire ${a.id}`),
        release: (id: string) => calls.push(`release ${id}`),
      },
      run: async (rows: readonly RunRow[]) => (calls.push(`run ${rows.map((r) => r.row)}`), []),
    } satisfies StepRunner;
    const executor = new StepExecutor(runner);
    const leave = { left: [], cache: [{ kind: 'move' as const, from: 3, to: 1 }], release: ['y'] };
    executor.begin({ leave, acquire: [adapter('x')] });
    executor.relayout({
      left: [],
      cache: [
        { kind: 'shrink', length: 9 },
        { kind: 'swap', a: 2, b: 0 },
      ],
      release: [],
    });
    const rows = [0, 1].map((row) => ({ row, tokens: [1], position: 0 }));
    await executor.run({ seqs: [], rows });
    executor.clear();
    expect(calls).toEqual(['move 3>1', 'release y', 'acquire x', 'shrink 9', 'swap 2<>0', 'run 0,1', 'clear']);
  });
});
