import { describe, expect, it } from 'vitest';
import type { Adapter } from '../../src/engine/adapters/read.ts';
import { StepExecutor, type StepRunner } from '../../src/engine/generation/executor.ts';
import type { Run } from '../../src/engine/generation/plan.ts';
import { BatchPolicy, type Schedulable, type SchedulerOptions } from '../../src/engine/generation/policy.ts';
import type { FinishReason } from '../../src/engine/generation/request.ts';
import type { RunRow } from '../../src/engine/runtime/runner.ts';
import { RUN_COST, shelvesOf, sizeClass } from '../../src/engine/generation/size-classes.ts';

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

const adapter = (id: string, params = 1000) =>
  ({ id, kind: 'lora', modules: [], manifest: { params } }) as unknown as Adapter;
const policyOf = (opts: Partial<SchedulerOptions> = {}) =>
  new BatchPolicy<FakeSeq>({ maxBatch: 8, prefillChunk: 4, prefillChunkIdle: 16, ...opts });

/** A run (or a step's decode runs, together) as [id, row, position, tokens fed], one per row. */
const shape = (run?: Run<FakeSeq> | Run<FakeSeq>[]): unknown[] | undefined => {
  if (Array.isArray(run)) return run.length ? run.flatMap((r) => shape(r)!) : undefined;
  return run?.seqs.map((s, i) => [s.id, run.rows[i].row, run.rows[i].position, run.rows[i].tokens.length]);
};

/** One step where every run succeeds: the sequences take their tokens, `finished` stop, the step ends. */
function step(policy: BatchPolicy<FakeSeq>, finished: FakeSeq[] = []) {
  const plan = policy.plan();
  for (const run of [...plan.decode, plan.prefill])
    run?.seqs.forEach((s, i) => (s.cached += run.rows[i].tokens.length));
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
    expect(plan.decode).toEqual([]);
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

  it('rows of a failed run leave at the end of the step; the rest of its plan stands', () => {
    const policy = policyOf({ prefillChunk: 2, prefillChunkIdle: 16 });
    const a = new FakeSeq('a', 2, adapter('x'));
    policy.add(a);
    step(policy);
    const b = new FakeSeq('b', 10);
    policy.add(b);
    const plan = policy.plan();
    expect(shape(plan.decode)).toEqual([['a', 0, 2, 1]]);
    expect(shape(plan.prefill)).toEqual([['b', 1, 0, 2]]); // runs although a's run threw: nothing moved yet
    b.cached += 2;
    const end = policy.end(plan.decode[0].seqs);
    expect(end).toEqual({ left: [a], cache: [{ kind: 'move', from: 1, to: 0 }], release: ['x'] });
    expect([a.row, b.row, policy.active]).toEqual([-1, 0, 1]);
    expect(shape(policy.plan().prefill)).toEqual([['b', 0, 2, 8]]); // nothing decodes now: the idle budget
  });
});

describe('size classes: a small adapter does not pay for a large one', () => {
  it('classes share a shelf while padding costs less than a run of their own', () => {
    /** Slots per class, as "class:slots ..." -> the shelf of each class, as "class:shelf ...". */
    const shelves = (slots: string, baseParams?: number) =>
      [...shelvesOf(new Map(slots.split(' ').map((p) => p.split(':').map(Number) as [number, number])), baseParams)]
        .map(([c, shelf]) => `${c}:${shelf}`)
        .join(' ');
    // 3 slots of class 7 padded to class 8: 3 x 128 = 384 parameters, under RUN_COST (8) runs of a 1000 base.
    expect(shelves('7:3 8:1', 1000)).toBe('7:7 8:7');
    // ... but not to class 15 (3 x 32,640 = 97,920, over 8,000): that one runs apart.
    expect(shelves('7:3 8:1 15:1', 1000)).toBe('7:7 8:7 15:15');
    expect(shelves('7:3 15:1', 1e9)).toBe('7:7 15:7'); // a huge base: padding is cheaper
    expect(shelves('7:3 15:1')).toBe('7:0 15:0'); // no cost known: one shelf
    expect(RUN_COST).toBe(8);
    expect([sizeClass(adapter('x', 100)), sizeClass(adapter('x', 128)), sizeClass(undefined)]).toEqual([7, 7, -1]);
  });

  it('decoding rows run by shelf: the base and small adapters together, a 200x larger one apart', () => {
    const runsOf = (baseParams: number) => {
      const policy = policyOf({ baseParams });
      const [small, large] = [adapter('small', 100), adapter('large', 20_000)];
      const seqs = [new FakeSeq('L1', 2, large), new FakeSeq('s1', 2, small), new FakeSeq('n', 2)];
      [...seqs, new FakeSeq('s2', 2, small)].forEach((s) => policy.add(s));
      for (let i = 0; i < 4; i++) step(policy);
      const plan = policy.plan();
      return { shelves: plan.shelves, runs: plan.decode.map((run) => run.seqs.map((s) => `${s.id}@${s.row}`)) };
    };
    // Sorted by class: the base row, the small adapter's rows, then the large one's, each shelf a run.
    expect(runsOf(1000)).toEqual({
      shelves: new Map([
        ['large', 15],
        ['small', 7],
      ]),
      runs: [['n@0', 's1@1', 's2@2'], ['L1@3']],
    });
    expect(runsOf(1e9).runs).toEqual([['n@0', 's1@1', 's2@2', 'L1@3']]); // padding is cheaper: one run
  });

  it('rows stay sorted by class and keep their cache rows through joins, leaves and cancels', () => {
    let seed = 11;
    const rand = (n: number) => {
      seed ^= seed << 13; // xorshift32
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) % n;
    };
    const adapters = [adapter('a', 50), adapter('b', 3000), adapter('c', 90_000), undefined];
    const policy = policyOf({ baseParams: 1000, maxBatch: 6 });
    const cache: Array<string | undefined> = []; // whose keys and values each cache row holds
    const apply = (ops: Array<{ kind: string; from?: number; to?: number; a?: number; b?: number }>) => {
      for (const op of ops) {
        if (op.kind === 'move') cache[op.to!] = cache[op.from!];
        if (op.kind === 'swap') [cache[op.a!], cache[op.b!]] = [cache[op.b!], cache[op.a!]];
      }
    };
    const all: FakeSeq[] = [];
    let checked = 0;
    for (let i = 0; i < 300; i++) {
      if (rand(3) === 0) policy.add(all[all.push(new FakeSeq(`q${all.length}`, 1 + rand(6), adapters[rand(4)])) - 1]);
      const running = all.filter((s) => s.row >= 0);
      if (running.length && rand(8) === 0) policy.cancel(running[rand(running.length)].id);
      const plan = policy.plan();
      apply(plan.leave.cache);
      for (const run of [...plan.decode, plan.prefill]) {
        if (!run) continue;
        const shelves = new Set(run.seqs.filter((s) => s.adapter).map((s) => plan.shelves.get(s.adapter!.id)));
        expect(shelves.size).toBeLessThanOrEqual(1);
        run.seqs.forEach((s, k) => {
          if (run.rows[k].position > 0) {
            expect(cache[run.rows[k].row], `${s.id} at step ${i}`).toBe(s.id);
            checked++;
          }
          cache[run.rows[k].row] = s.id;
          s.cached += run.rows[k].tokens.length;
          if (!s.prefilling && rand(10) === 0) s.finish = 'stop';
        });
      }
      const end = policy.end();
      apply(end.cache);
      const decoding = all.filter((s) => s.row >= 0 && !s.prefilling).sort((x, y) => x.row - y.row);
      const classes = decoding.map((s) => sizeClass(s.adapter));
      expect(classes, `step ${i}`).toEqual([...classes].sort((x, y) => x - y));
      expect(decoding.map((s) => s.row)).toEqual(decoding.map((_, k) => k)); // the decoding region is rows [0, n)
    }
    expect(checked).toBeGreaterThan(200);
  });
});

describe('step executor', () => {
  it('applies cache operations in order, then releases, and runs the planned rows', async () => {
    const calls: string[] = [];
    const runner = {
      cache: {
        moveRow: (from: number, to: number) => calls.push(`move ${from}>${to}`),
        copyRow: (from: number, to: number) => calls.push(`copy ${from}>${to}`),
        swapRows: (a: number, b: number) => calls.push(`swap ${a}<>${b}`),
        shrink: (length: number) => calls.push(`shrink ${length}`),
        clear: () => calls.push('clear'),
      },
      bank: {
        acquire: (a: Adapter, shelf?: number) => calls.push(`acquire ${a.id} ${shelf}`),
        release: (id: string) => calls.push(`release ${id}`),
        regroup: (shelves: ReadonlyMap<string, number>) => calls.push(`regroup ${[...shelves]}`),
      },
      run: async (rows: readonly RunRow[]) => (calls.push(`run ${rows.map((r) => r.row)}`), []),
    } satisfies StepRunner;
    const executor = new StepExecutor(runner);
    const leave = { left: [], cache: [{ kind: 'move' as const, from: 3, to: 1 }], release: ['y'] };
    executor.begin({ leave, acquire: [adapter('x')], shelves: new Map([['x', 3]]), decode: [] });
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
    expect(calls).toEqual([
      'move 3>1',
      'release y',
      'acquire x 3',
      'regroup x,3',
      'shrink 9',
      'swap 2<>0',
      'run 0,1',
      'clear',
    ]);
  });
});
