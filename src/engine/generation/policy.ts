import type { Adapter } from '../adapters/read.ts';
import type { Relayout, Run, StepPlan } from './plan.ts';
import type { FinishReason } from './request.ts';

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
  nextInput(chunk: number): number[];
}

export interface SchedulerOptions {
  /** Rows decoded together at most; more requests wait in the queue. */
  maxBatch: number;
  /** Prompt tokens per prefill run while other rows are decoding (bounds their stall). */
  prefillChunk: number;
  /** Prompt tokens per prefill run when nothing is decoding. */
  prefillChunkIdle: number;
}

/**
 * Continuous batching, as plans. Running sequences occupy cache rows [0, n): first the decoding
 * rows, then the prefilling ones. Each step runs the decoding rows (one token each, whatever their
 * adapter) and then one chunk of the waiting prompts, so a long prompt never stalls running streams
 * for more than a chunk. New requests join at the next step; finished or cancelled ones leave at once.
 *
 * A step is `plan()`, the runs (`fail()` for a run that throws), then `end()` once the sequences
 * have taken their logits.
 */
export class BatchPolicy<S extends Schedulable> {
  private readonly waiting: S[] = [];
  private readonly rows: S[] = [];
  private decoding = 0;
  private readonly cancelled = new Set<string>();
  /** Running rows per adapter id: a bank slot is claimed by the first and freed by the last. */
  private readonly adapterRows = new Map<string, number>();

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
    for (const seq of [...this.rows]) if (this.cancelled.delete(seq.id)) this.remove(seq, leave);
    this.cancelled.clear();
    const acquire: Adapter[] = [];
    while (this.waiting.length && this.rows.length < this.opts.maxBatch) {
      const seq = this.waiting.shift()!;
      if (seq.adapter) {
        const n = this.adapterRows.get(seq.adapter.id) ?? 0;
        if (n === 0) acquire.push(seq.adapter);
        this.adapterRows.set(seq.adapter.id, n + 1);
      }
      seq.row = this.rows.length;
      this.rows.push(seq);
    }
    return { leave, acquire, decode: this.run(this.rows.slice(0, this.decoding), 1), prefill: this.prefill() };
  }

  /**
   * The prefill run: the budget's worth of prompt tokens, as one chunk length for the first rows.
   * `plan()` includes it; a failed decode run changes the rows, so it is chosen again then.
   */
  prefill(): Run<S> | undefined {
    const prefilling = this.rows.slice(this.decoding);
    if (!prefilling.length) return undefined;
    const budget = this.decoding ? this.opts.prefillChunk : this.opts.prefillChunkIdle;
    const longest = Math.max(...prefilling.map((s) => s.prompt.length - s.cached));
    const chunk = Math.max(1, Math.min(budget, longest));
    return this.run(prefilling.slice(0, Math.max(1, Math.floor(budget / chunk))), chunk);
  }

  /** The rows of a run that threw leave. */
  fail(seqs: readonly S[]): Relayout<S> {
    const out = relayout<S>();
    for (const seq of seqs) this.remove(seq, out);
    return out;
  }

  /** Ends a step: finished rows leave, the cache may shrink, rows done with their prompt start decoding. */
  end(): Relayout<S> {
    const out = relayout<S>();
    const finished = this.rows.filter((seq) => seq.finish);
    for (const seq of finished) this.remove(seq, out);
    // Long rows left: attend over less (the graph reads the whole cache capacity every step).
    if (finished.length && this.rows.length) {
      out.cache.push({ kind: 'shrink', length: Math.max(...this.rows.map((s) => s.cached + 1)) });
    }
    for (const seq of this.rows.slice(this.decoding)) if (!seq.prefilling) this.promote(seq, out);
    return out;
  }

  /** Consecutive rows, each fed up to `chunk` tokens. */
  private run(seqs: S[], chunk: number): Run<S> | undefined {
    if (!seqs.length) return undefined;
    return {
      seqs,
      rows: seqs.map((s) => ({ row: s.row, tokens: s.nextInput(chunk), position: s.cached, adapter: s.adapter?.id })),
    };
  }

  /** A row whose prompt is fully cached moves into the decoding region. */
  private promote(seq: S, out: Relayout<S>): void {
    const to = this.decoding++;
    const other = this.rows[to];
    if (seq.row !== to) out.cache.push({ kind: 'swap', a: seq.row, b: to });
    [this.rows[seq.row], this.rows[to]] = [other, seq];
    other.row = seq.row;
    seq.row = to;
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
      move(this.decoding - 1, gap);
      gap = --this.decoding;
    }
    move(this.rows.length - 1, gap);
    this.rows.pop();
    seq.row = -1;
    if (seq.adapter) {
      const n = this.adapterRows.get(seq.adapter.id)! - 1;
      if (n) this.adapterRows.set(seq.adapter.id, n);
      else {
        this.adapterRows.delete(seq.adapter.id);
        out.release.push(seq.adapter.id);
      }
    }
    out.left.push(seq);
  }
}

const relayout = <S>(): Relayout<S> => ({ left: [], cache: [], release: [] });
