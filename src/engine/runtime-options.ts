import type { PrecisionOptions } from './model/precision.ts';
import type { ProviderChoice } from './runtime/providers.ts';
import type { WeightCacheOptions } from './weights/cache.ts';

/** How an engine runs its model: provider, threads, weight precision and longest sequence. */
export interface EngineRuntime extends PrecisionOptions {
  ep?: ProviderChoice;
  threads?: number;
  /** Longest sequence served (prompt + generated); default and maximum: the model's context. */
  context?: number;
  /** The converted-weights cache (weights/cache.ts); none: the weights are converted at every load. */
  weightCache?: WeightCacheOptions;
}

/** Just the runtime fields of a wider options object (a command's flags, a node's options), to pass on. */
export function runtimeOf(o: EngineRuntime): EngineRuntime {
  const { ep, threads, dtype, quantize, quantizeBlock, context, weightCache } = o;
  return { ep, threads, dtype, quantize, quantizeBlock, context, weightCache };
}
