import { StepExecutor, type StepRunner } from './executor.ts';
import type { Run } from './plan.ts';
import { BatchPolicy, type SchedulerOptions } from './policy.ts';
import type { TokenEvent } from './request.ts';
import type { Sequence } from './sequence.ts';

export type { SchedulerOptions } from './policy.ts';

export interface StepStats {
  decodeRows: number;
  /** Runs the decoding rows took (one per bank shelf). */
  decodeRuns: number;
  prefillRows: number;
  prefillTokens: number;
  generatedTokens: number;
  ms: number;
  /** Bytes of host memory the step's runs fed (on a GPU provider, what went to the device). */
  hostBytesIn: number;
}

/**
 * Continuous batching over a model runner: the policy (policy.ts) plans each step as data, the
 * executor (executor.ts) applies the plan to the KV cache and adapter bank and runs the runner, and
 * the sequences here take their logits and tell their clients.
 */
export class Scheduler {
  private readonly policy: BatchPolicy<Sequence>;
  private readonly executor: StepExecutor;
  private looping = false;
  onStep?: (stats: StepStats) => void;

  constructor(
    private readonly runner: StepRunner,
    opts: SchedulerOptions,
  ) {
    this.policy = new BatchPolicy(opts);
    this.executor = new StepExecutor(runner);
  }

  get queued(): number {
    return this.policy.queued;
  }
  get active(): number {
    return this.policy.active;
  }

  add(seq: Sequence): void {
    this.policy.add(seq);
    void this.loop();
  }

  cancel(id: string): void {
    this.policy.cancel(id)?.complete('cancelled');
  }

  private async loop(): Promise<void> {
    if (this.looping) return;
    this.looping = true;
    try {
      // Requests that arrive together (one message, one tick) start in the same step.
      await new Promise((resolve) => setImmediate(resolve));
      while (!this.policy.idle) {
        await this.step();
        // Let cancellations and new requests (worker messages) in between steps.
        await new Promise((resolve) => setImmediate(resolve));
      }
      this.executor.clear();
    } finally {
      this.looping = false;
    }
  }

  private async step(): Promise<void> {
    const started = performance.now();
    const fedBefore = this.runner.hostBytesIn ?? 0;
    const plan = this.policy.plan();
    this.executor.begin(plan);
    for (const seq of plan.leave.left) seq.complete('cancelled');

    const prefillRows = this.policy.prefilling;
    const events = new Map<Sequence, TokenEvent[]>();
    const failed = new Map<Sequence, Error>();
    for (const run of plan.decode) await this.execute(run, events, failed);
    const { prefill } = plan;
    const prefillTokens = prefill && (await this.execute(prefill, events, failed)) ? tokens(prefill) : 0;

    let generated = 0;
    for (const [seq, list] of events) {
      generated += list.length;
      seq.emit(list);
    }
    const end = this.policy.end([...failed.keys()]);
    this.executor.relayout(end);
    for (const seq of end.left) {
      const error = failed.get(seq);
      if (error) seq.fail(error);
      else seq.complete();
    }
    this.onStep?.({
      decodeRows: plan.decode.reduce((n, run) => n + run.seqs.length, 0),
      decodeRuns: plan.decode.length,
      prefillRows,
      prefillTokens,
      generatedTokens: generated,
      ms: performance.now() - started,
      hostBytesIn: (this.runner.hostBytesIn ?? 0) - fedBefore,
    });
  }

  /** Runs one batch and gives each sequence its logits; a run that throws marks its rows `failed`. */
  private async execute(
    run: Run<Sequence>,
    events: Map<Sequence, TokenEvent[]>,
    failed: Map<Sequence, Error>,
  ): Promise<boolean> {
    let logits: Float32Array[];
    try {
      logits = await this.executor.run(run);
    } catch (e) {
      for (const seq of run.seqs) failed.set(seq, e as Error);
      return false;
    }
    const record = (seq: Sequence, event: TokenEvent | undefined) => {
      if (event) events.set(seq, [...(events.get(seq) ?? []), event]);
    };
    run.seqs.forEach((seq, i) => {
      const event = seq.advance(run.rows[i].tokens.length, logits[i]);
      record(seq, event);
      // The prompt is in: its forks (n > 1) take their first token from the same logits.
      if (!seq.prefilling) for (const fork of seq.forks) record(fork, fork.advance(fork.prompt.length, logits[i]));
    });
    return true;
  }
}

const tokens = (run: Run<unknown>) => run.rows.reduce((n, r) => n + r.tokens.length, 0);
