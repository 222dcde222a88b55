import type { AdapterBank } from '../runtime/adapter-bank.ts';
import type { RunnerKvCache } from '../runtime/kv-cache.ts';
import type { RunRow } from '../runtime/runner.ts';
import type { Relayout, Run, StepPlan } from './plan.ts';

/** What the executor uses of the model runner (ModelRunner has it; tests can fake it). */
export interface StepRunner {
  readonly cache: Pick<RunnerKvCache, 'moveRow' | 'copyRow' | 'swapRows' | 'shrink' | 'clear'>;
  readonly bank: Pick<AdapterBank, 'acquire' | 'release' | 'regroup'>;
  run(rows: readonly RunRow[]): Promise<Float32Array[]>;
  /** Bytes of host memory fed to runs so far (ModelRunner.hostBytesIn). */
  readonly hostBytesIn?: number;
}

/** Applies the policy's plans to the runner's KV cache and adapter bank, and runs the runner. */
export class StepExecutor {
  constructor(private readonly runner: StepRunner) {}

  /** Before the runs: cancelled rows leave, the adapters of joining rows take bank slots, shelves change. */
  begin(plan: StepPlan<unknown>): void {
    this.relayout(plan.leave);
    for (const adapter of plan.acquire) this.runner.bank.acquire(adapter, plan.shelves.get(adapter.id));
    this.runner.bank.regroup(plan.shelves);
  }

  /** Logits of each row's last fed token. */
  run(run: Run<unknown>): Promise<Float32Array[]> {
    return this.runner.run(run.rows);
  }

  /** Cache operations in order, then the freed adapters leave the bank. */
  relayout(r: Relayout<unknown>): void {
    const cache = this.runner.cache;
    for (const op of r.cache) {
      if (op.kind === 'move') cache.moveRow(op.from, op.to);
      else if (op.kind === 'swap') cache.swapRows(op.a, op.b);
      else if (op.kind === 'copy') cache.copyRow(op.from, op.to);
      else cache.shrink(op.length);
    }
    for (const id of r.release) this.runner.bank.release(id);
  }

  /** Frees the cache (when nothing runs or waits). */
  clear(): void {
    this.runner.cache.clear();
  }
}
