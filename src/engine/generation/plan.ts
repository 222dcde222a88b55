import type { Adapter } from '../adapters/read.ts';
import type { RunRow } from '../runtime/runner.ts';

/**
 * What the scheduler's policy decides, as plain data, and what the executor applies to the runner:
 * the policy never touches the KV cache or the adapter bank, so it can be tested without a model.
 */

/** One change to the KV cache's rows, applied in order. */
type CacheOp =
  /** Copies row `from` over row `to` (the row that was at `to` has left). */
  | { kind: 'move'; from: number; to: number }
  /** Exchanges two rows. */
  | { kind: 'swap'; a: number; b: number }
  /** Copies row `from` into the new row `to`: a fork (n > 1) starts from its prompt's cached keys. */
  | { kind: 'copy'; from: number; to: number }
  /** Lets the cache attend over fewer positions: the longest running row needs `length`. */
  | { kind: 'shrink'; length: number };

/** Rows that left, and the cache and bank changes that keep the remaining rows compact. */
export interface Relayout<S> {
  /** Sequences that left their rows, in order (to be told why). */
  left: S[];
  cache: CacheOp[];
  /** Adapters whose last row left (their bank slots are freed). */
  release: string[];
}

/** One runner call: consecutive cache rows, with each row's sequence. */
export interface Run<S> {
  seqs: S[];
  /** `rows[i]` feeds `seqs[i]` tokens [position, position + tokens.length). */
  rows: RunRow[];
}

/** One step: rows leave and join, then the decoding rows run, then one prefill chunk. */
export interface StepPlan<S> {
  /** Cancelled rows, gone before anything runs. */
  leave: Relayout<S>;
  /** Adapters whose first row joins this step (bank slots to claim). */
  acquire: Adapter[];
  /** The bank shelf of every running adapter (size-classes.ts): a run's adapters share one. */
  shelves: ReadonlyMap<string, number>;
  /** Rows [0, decoding), one token each: one run per shelf (none when nothing decodes). */
  decode: Run<S>[];
  /** A chunk of the prompts of the first prefilling rows. */
  prefill?: Run<S>;
}
