import { openModel } from '../../src/engine/loaders/load.ts';
import type { WeightFormat } from '../../src/engine/weights/quantize.ts';
import { loadAdapterFolder } from '../../src/engine/adapters/load.ts';
import { ModelRunner, type RunnerOptions } from '../../src/engine/runtime/runner.ts';
import { argmax } from '../../src/engine/generation/sampler.ts';
import type { Adapter } from '../../src/engine/adapters/read.ts';

/** A model runner in this thread, for tests that need every position's logits. */
export async function runnerFor(
  modelPath: string,
  format?: WeightFormat,
  opts: Pick<RunnerOptions, 'ep' | 'kv'> = {},
): Promise<ModelRunner> {
  const model = openModel(modelPath);
  try {
    return await ModelRunner.create(model.config, model.weights, { threads: 2, format, ...opts });
  } finally {
    model.close();
  }
}

export function adapterFor(runner: ModelRunner, dir: string): Adapter {
  return loadAdapterFolder(dir, runner.config, dir);
}

/**
 * Feeds `tokens` one position at a time through the KV-cache path and returns the logits after
 * each position (row 0 of the cache).
 */
export async function teacherForce(runner: ModelRunner, tokens: number[], adapter?: Adapter): Promise<Float32Array[]> {
  if (adapter) runner.bank.acquire(adapter);
  try {
    const out: Float32Array[] = [];
    for (let t = 0; t < tokens.length; t++) {
      const [logits] = await runner.run([{ row: 0, tokens: [tokens[t]], position: t, adapter: adapter?.id }]);
      out.push(logits.slice());
    }
    return out;
  } finally {
    if (adapter) runner.bank.release(adapter.id);
    runner.cache.clear();
  }
}

/** Greedy decoding of several rows together (one run per step), each with its own adapter. */
export async function greedyBatch(
  runner: ModelRunner,
  rows: Array<{ prompt: number[]; adapter?: Adapter }>,
  steps: number,
) {
  for (const r of rows) if (r.adapter) runner.bank.acquire(r.adapter);
  try {
    const position = rows.map(() => 0);
    let feed = rows.map((r) => r.prompt);
    const tokens: number[][] = rows.map(() => []);
    const logits: Float32Array[][] = rows.map(() => []);
    for (let s = 0; s < steps; s++) {
      const out = await runner.run(
        rows.map((r, i) => ({ row: i, tokens: feed[i], position: position[i], adapter: r.adapter?.id })),
      );
      feed = out.map((l, i) => {
        position[i] += feed[i].length;
        logits[i].push(l.slice());
        const t = argmax(l);
        tokens[i].push(t);
        return [t];
      });
    }
    return { tokens, logits };
  } finally {
    for (const r of rows) if (r.adapter) runner.bank.release(r.adapter.id);
    runner.cache.clear();
  }
}
