import type { Adapter } from '../adapters/read.ts';
import type { Relayout, Run, StepPlan } from './plan.ts';
import type { FinishReason } from './request.ts';
import { shelvesOf, sizeClass } from './size-classes.ts';

/** What the policy reads of a sequence (Sequence has it all; tests use plain objects). */
export interface Schedulable {
  readonly id: string;
  readonly prompt: readonly number[];
  readonly adapter: Adapter | undefined;
  /** Cache row while running, -1 otherwise; the policy assigns it. */
  row: number;
  /** Tokens already stored in the KV cache. */
  readonly cached: number;
  readonly prefilling: boolean;
  readonly finish?: FinishReason;
  /**
   * The request's other choices (n > 1) while its prompt prefills: they share its id, and take a
   * copy of its cache row when the prompt is in (so the prompt is run once, whatever n).
   */
  readonly forks?: Schedulable[];
  nextInput(chunk: number): number[];
}

export interface SchedulerOptions {
  /** Rows decoded together at most; more requests wait in the queue. */
  maxBatch: number;
  /** Prompt tokens per prefill run while other rows are decoding (bounds their stall). */
  prefillChunk: number;
  /** Prompt tokens per prefill run when nothing is decoding. */
  prefillChunkIdle: number;
  /**
   * Parameters of the base model: what one more run costs (a pass over its weights), weighed
   * against padding small adapters to a large one (size-classes.ts). Unset: all rows in one run.
   */
  baseParams?: number;
}

/**
 * Continuous batching, as plans. Running sequences occupy cache rows [0, n): first the decoding
 * rows, sorted by their adapter's size class, then the prefilling ones. Each step runs the decoding
 * rows (one token each, one run per bank shelf: adapters of very different sizes run apart, so
 * small ones never pay for a large one's padding) and then one chunk of the waiting prompts, so a
 * long prompt never stalls running streams for more than a chunk. New requests join at the next
 * step; finished or cancelled ones leave at once.
 *
 * A step asks once and reports once: `plan()` chooses all of its runs, then `end()` (once the
 * sequences have taken their logits) is told which rows failed, and the rows that are done leave.
 */
export class BatchPolicy<S extends Schedulable> {
  private readonly waiting: S[] = [];
  private readonly rows: S[] = [];
  private decoding = 0;
  private readonly cancelled = new Set<string>();
  /** Running rows per adapter id: a bank slot is claimed by the first and freed by the last. */
  private readonly adapterRows = new Map<string, { adapter: Adapter; rows: number }>();
  /** The bank shelf of each running adapter, as of the last plan. */
  private shelves = new Map<string, number>();

  constructor(private readonly opts: SchedulerOptions) {}

  get queued(): number {
    return this.waiting.length;
  }
  get active(): number {
    return this.rows.length;
  }
  /** Rows still feeding their prompt. */
  get prefilling(): number {
    return this.rows.length - this.decoding;
  }
  get idle(): boolean {
    return !this.rows.length && !this.waiting.length;
  }

  add(seq: S): void {
    this.waiting.push(seq);
  }

  /** A queued sequence is dropped and returned (for the caller to complete); a running one leaves at the next plan. */
  cancel(id: string): S | undefined {
    const i = this.waiting.findIndex((s) => s.id === id);
    if (i >= 0) return this.waiting.splice(i, 1)[0];
    if (this.rows.some((s) => s.id === id)) this.cancelled.add(id);
    return undefined;
  }

  /** Starts a step: cancelled rows leave, queued requests join while there is room, and the runs are chosen. */
  plan(): StepPlan<S> {
    const leave = relayout<S>();
    // A request's forks share its id: they all leave.
    for (const seq of [...this.rows]) if (this.cancelled.has(seq.id)) this.remove(seq, leave);
    this.cancelled.clear();
    const acquire: Adapter[] = [];
    // Rows are kept for the forks of a request too (they join when its prompt is in).
    const width = (s: S) => 1 + (s.forks?.length ?? 0);
    const room = () => this.opts.maxBatch - this.rows.reduce((n, s) => n + width(s), 0);
    while (this.waiting.length && width(this.waiting[0]) <= room()) {
      const seq = this.waiting.shift()!;
      if (seq.adapter) {
        const user = this.adapterRows.get(seq.adapter.id);
        if (user) user.rows++;
        else {
          acquire.push(seq.adapter);
          this.adapterRows.set(seq.adapter.id, { adapter: seq.adapter, rows: 1 });
        }
      }
      seq.row = this.rows.length;
      this.rows.push(seq);
    }
    this.shelves = this.assignShelves();
    const decode = this.byShelf(this.rows.slice(0, this.decoding)).map((seqs) => this.run(seqs, 1)!);
    return { leave, acquire, shelves: this.shelves, decode, prefill: this.prefill() };
  }

  /** The prefill run: the budget's worth of prompt tokens, as one chunk length for the first rows. */
  private prefill(): Run<S> | undefined {
    // The first prefilling rows that share a shelf.
    const prefilling = this.byShelf(this.rows.slice(this.decoding))[0];
    if (!prefilling) return undefined;
    const budget = this.decoding ? this.opts.prefillChunk : this.opts.prefillChunkIdle;
    const longest = Math.max(...prefilling.map((s) => s.prompt.length - s.cached));
    const chunk = Math.max(1, Math.min(budget, longest));
    return this.run(prefilling.slice(0, Math.max(1, Math.floor(budget / chunk))), chunk);
  }

  /**
   * Ends a step: the rows of runs that threw (`failed`) leave, the forks of prompts just prefilled
   * take their rows, finished rows leave, the cache may shrink, rows done with their prompt start
   * decoding. Rows move only here, so a run that throws leaves the step's other runs valid.
   */
  end(failed: readonly S[] = []): Relayout<S> {
    const out = relayout<S>();
    for (const seq of failed) this.remove(seq, out);
    for (const seq of this.rows.slice(this.decoding)) {
      if (!seq.prefilling && seq.forks?.length) this.placeForks(seq, out);
    }
    const finished = this.rows.filter((seq) => seq.finish);
    for (const seq of finished) this.remove(seq, out);
    // Long rows left: attend over less (the graph reads the whole cache capacity every step).
    if (finished.length && this.rows.length) {
      out.cache.push({ kind: 'shrink', length: Math.max(...this.rows.map((s) => s.cached + 1)) });
    }
    for (const seq of this.rows.slice(this.decoding)) if (!seq.prefilling) this.promote(seq, out);
    return out;
  }

  /** A request's forks take new rows, each a copy of its prompt's (they start decoding with it). */
  private placeForks(seq: S, out: Relayout<S>): void {
    for (const fork of seq.forks!.splice(0) as S[]) {
      fork.row = this.rows.length;
      this.rows.push(fork);
      out.cache.push({ kind: 'copy', from: seq.row, to: fork.row });
      if (fork.adapter) this.adapterRows.get(fork.adapter.id)!.rows++;
    }
  }

  /** Every running adapter's shelf, from the slots of each size class (size-classes.ts). */
  private assignShelves(): Map<string, number> {
    const slots = new Map<number, number>();
    for (const { adapter } of this.adapterRows.values()) {
      const c = sizeClass(adapter);
      slots.set(c, (slots.get(c) ?? 0) + 1);
    }
    const byClass = shelvesOf(slots, this.opts.baseParams);
    return new Map([...this.adapterRows.values()].map(({ adapter }) => [adapter.id, byClass.get(sizeClass(adapter))!]));
  }

  /** Consecutive rows cut where the shelf changes; base-model rows go with any shelf. */
  private byShelf(seqs: S[]): S[][] {
    const runs: S[][] = [];
    let shelf: number | undefined;
    for (const seq of seqs) {
      const own = seq.adapter ? this.shelves.get(seq.adapter.id) : undefined;
      if (!runs.length || (own !== undefined && shelf !== undefined && own !== shelf)) runs.push([]);
      runs[runs.length - 1].push(seq);
      shelf = own ?? shelf;
    }
    return runs;
  }

  /** Consecutive rows, each fed up to `chunk` tokens. */
  private run(seqs: S[], chunk: number): Run<S> | undefined {
    if (!seqs.length) return undefined;
    return {
      seqs,
      rows: seqs.map((s) => ({ row: s.row, tokens: s.nextInput(chunk), position: s.cached, adapter: s.adapter?.id })),
    };
  }

  /**
   * A row whose prompt is fully cached moves into the decoding region, to the end of its size
   * class: past each larger class it trades places with that class's first row.
   */
  private promote(seq: S, out: Relayout<S>): void {
    this.swap(seq.row, this.decoding++, out);
    const c = sizeClass(seq.adapter);
    while (seq.row > 0 && sizeClass(this.rows[seq.row - 1].adapter) > c) {
      let first = seq.row - 1;
      const larger = sizeClass(this.rows[first].adapter);
      while (first > 0 && sizeClass(this.rows[first - 1].adapter) === larger) first--;
      this.swap(first, seq.row, out);
    }
  }

  private swap(a: number, b: number, out: Relayout<S>): void {
    if (a === b) return;
    out.cache.push({ kind: 'swap', a, b });
    [this.rows[a], this.rows[b]] = [this.rows[b], this.rows[a]];
    this.rows[a].row = a;
    this.rows[b].row = b;
  }

  /** Frees a row, keeping both regions contiguous by moving the last row of each into the gap. */
  private remove(seq: S, out: Relayout<S>): void {
    const move = (from: number, to: number) => {
      if (from === to) return;
      out.cache.push({ kind: 'move', from, to });
      this.rows[to] = this.rows[from];
      this.rows[to].row = to;
    };
    let gap = seq.row;
    if (gap < 0) return;
    if (gap < this.decoding) {
      // The decoding rows stay sorted by class: the last row of each later class's run fills the gap.
      for (let next = gap + 1; next < this.decoding;) {
        const c = sizeClass(this.rows[next].adapter);
        let last = next;
        while (last + 1 < this.decoding && sizeClass(this.rows[last + 1].adapter) === c) last++;
        move(last, gap);
        gap = last;
        next = last + 1;
      }
      this.decoding--;
    }
    move(this.rows.length - 1, gap);
    this.rows.pop();
    seq.row = -1;
    if (seq.adapter && --this.adapterRows.get(seq.adapter.id)!.rows === 0) {
      this.adapterRows.delete(seq.adapter.id);
      out.release.push(seq.adapter.id);
    }
    out.left.push(seq);
  }
}

const relayout = <S>(): Relayout<S> => ({ left: [], cache: [], release: [] });
