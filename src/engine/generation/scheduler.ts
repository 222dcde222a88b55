import type { ModelRunner, RunRow } from '../runtime/runner.ts';
import type { TokenEvent } from './request.ts';
import type { Sequence } from './sequence.ts';

export interface SchedulerOptions {
  /** Rows decoded together at most; more requests wait in the queue. */
  maxBatch: number;
  /** Prompt tokens per prefill run while other rows are decoding (bounds their stall). */
  prefillChunk: number;
  /** Prompt tokens per prefill run when nothing is decoding. */
  prefillChunkIdle: number;
}

export interface StepStats {
  decodeRows: number;
  prefillRows: number;
  prefillTokens: number;
  generatedTokens: number;
  ms: number;
}

/**
 * Continuous batching. Running sequences occupy cache rows [0, n): first the decoding rows, then
 * the prefilling ones. Each step runs the decoding rows (one token each, whatever their adapter)
 * and then one chunk of the waiting prompts, so a long prompt never stalls running streams for
 * more than a chunk. New requests join at the next step; finished or cancelled ones leave at once.
 */
export class Scheduler {
  private readonly waiting: Sequence[] = [];
  private readonly rows: Sequence[] = [];
  private decoding = 0;
  private looping = false;
  private readonly cancelled = new Set<string>();
  onStep?: (stats: StepStats) => void;

  constructor(
    private readonly runner: ModelRunner,
    private readonly opts: SchedulerOptions,
  ) {}

  get queued(): number {
    return this.waiting.length;
  }
  get active(): number {
    return this.rows.length;
  }

  add(seq: Sequence): void {
    this.waiting.push(seq);
    void this.loop();
  }

  cancel(id: string): void {
    const i = this.waiting.findIndex((s) => s.id === id);
    if (i >= 0) this.waiting.splice(i, 1)[0].complete('cancelled');
    else if (this.rows.some((s) => s.id === id)) this.cancelled.add(id);
  }

  private async loop(): Promise<void> {
    if (this.looping) return;
    this.looping = true;
    try {
      // Requests that arrive together (one message, one tick) start in the same step.
      await new Promise((resolve) => setImmediate(resolve));
      while (this.rows.length || this.waiting.length) {
        await this.step();
        // Let cancellations and new requests (worker messages) in between steps.
        await new Promise((resolve) => setImmediate(resolve));
      }
      this.runner.cache.clear();
    } finally {
      this.looping = false;
    }
  }

  private async step(): Promise<void> {
    const started = performance.now();
    this.dropCancelled();
    while (this.waiting.length && this.rows.length < this.opts.maxBatch) {
      const seq = this.waiting.shift()!;
      if (seq.adapter) this.runner.bank.acquire(seq.adapter);
      seq.row = this.rows.length;
      this.rows.push(seq);
    }
    const events = new Map<Sequence, TokenEvent[]>();
    const decodeRows = this.rows.slice(0, this.decoding);
    await this.runRows(decodeRows, 1, events);

    const prefilling = this.rows.slice(this.decoding);
    let prefillTokens = 0;
    if (prefilling.length) {
      const budget = this.decoding ? this.opts.prefillChunk : this.opts.prefillChunkIdle;
      const longest = Math.max(...prefilling.map((s) => s.prompt.length - s.cached));
      const chunk = Math.max(1, Math.min(budget, longest));
      const group = prefilling.slice(0, Math.max(1, Math.floor(budget / chunk)));
      prefillTokens = await this.runRows(group, chunk, events);
    }

    let generated = 0;
    for (const [seq, list] of events) {
      generated += list.length;
      seq.emit(list);
    }
    const finished = this.rows.filter((seq) => seq.finish);
    for (const seq of finished) this.remove(seq, () => seq.complete());
    // Long rows left: attend over less (the graph reads the whole cache capacity every step).
    if (finished.length && this.rows.length) this.runner.cache.shrink(Math.max(...this.rows.map((s) => s.cached + 1)));
    for (const seq of this.rows.slice(this.decoding)) if (!seq.prefilling) this.promote(seq);
    this.onStep?.({
      decodeRows: decodeRows.length,
      prefillRows: prefilling.length,
      prefillTokens,
      generatedTokens: generated,
      ms: performance.now() - started,
    });
  }

  /** Runs consecutive rows, each fed up to `chunk` tokens; returns the number of tokens fed. */
  private async runRows(seqs: Sequence[], chunk: number, events: Map<Sequence, TokenEvent[]>): Promise<number> {
    if (!seqs.length) return 0;
    const rows: RunRow[] = seqs.map((s) => ({ row: s.row, tokens: s.nextInput(chunk), position: s.cached, adapter: s.adapter?.id }));
    let logits: Float32Array[];
    try {
      logits = await this.runner.run(rows);
    } catch (e) {
      for (const seq of seqs) this.remove(seq, () => seq.fail(e as Error));
      return 0;
    }
    seqs.forEach((seq, i) => {
      const event = seq.advance(rows[i].tokens.length, logits[i]);
      if (event) events.set(seq, [...(events.get(seq) ?? []), event]);
    });
    return rows.reduce((n, r) => n + r.tokens.length, 0);
  }

  private dropCancelled(): void {
    for (const seq of [...this.rows]) {
      if (this.cancelled.delete(seq.id)) this.remove(seq, () => seq.complete('cancelled'));
    }
    this.cancelled.clear();
  }

  /** A row whose prompt is fully cached moves into the decoding region. */
  private promote(seq: Sequence): void {
    const to = this.decoding++;
    const other = this.rows[to];
    this.runner.cache.swapRows(seq.row, to);
    [this.rows[seq.row], this.rows[to]] = [other, seq];
    other.row = seq.row;
    seq.row = to;
  }

  /** Frees a row, keeping both regions contiguous by moving the last row of each into the gap. */
  private remove(seq: Sequence, notify: () => void): void {
    const cache = this.runner.cache;
    const move = (from: number, to: number) => {
      if (from === to) return;
      cache.moveRow(from, to);
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
    if (seq.adapter) this.runner.bank.release(seq.adapter.id);
    notify();
  }
}
