import type { ModelRunner } from '../runtime/runner.ts';

export interface PerplexityResult {
  /** Tokens scored (targets), over all windows. */
  tokens: number;
  /** Mean negative log-likelihood of the scored tokens, in nats. */
  nll: number;
  perplexity: number;
  windows: number;
}

export interface PerplexityOptions {
  /** Tokens per window (default: the model's context). */
  context?: number;
  /** Adapter id in the runner's bank whose model is scored. */
  adapter?: string;
  /** Positions that are never targets (e.g. an adapter's task tokens), by index into `ids`. */
  unscored?: ReadonlySet<number>;
  /** Tokens per graph run within a window. */
  chunk?: number;
  onWindow?: (done: number, total: number) => void;
}

/**
 * Perplexity of a token sequence: cut into consecutive windows of `context` tokens, each window
 * evaluated on its own (positions from 0), scoring every token but its first by the logits of the
 * tokens before it: exp(mean of -log p(token_i | window tokens before i)).
 */
export async function perplexity(
  runner: ModelRunner,
  ids: readonly number[],
  o: PerplexityOptions = {},
): Promise<PerplexityResult> {
  const context = o.context ?? runner.config.maxPositions;
  if (!Number.isInteger(context) || context < 2)
    throw new RangeError(`the context must be at least 2 tokens (got ${context})`);
  if (context > runner.config.maxPositions) {
    throw new RangeError(
      `the context ${context} exceeds the model's maximum of ${runner.config.maxPositions} positions`,
    );
  }
  if (ids.length < 2) throw new RangeError('the text must be at least 2 tokens long to be scored');
  const chunk = o.chunk ?? 256;
  const windows = Math.ceil(ids.length / context);
  let total = 0;
  let scored = 0;
  try {
    for (let w = 0; w < windows; w++) {
      const start = w * context;
      const window = ids.slice(start, start + context);
      for (let at = 0; at < window.length; at += chunk) {
        const tokens = window.slice(at, at + chunk);
        const [logits] = await runner.run([{ row: 0, tokens, position: at, adapter: o.adapter, everyPosition: true }]);
        const width = logits.length / tokens.length;
        // Row j of this chunk predicts window token at + j + 1.
        for (let j = 0; j < tokens.length; j++) {
          const target = at + j + 1;
          if (target >= window.length || o.unscored?.has(start + target)) continue;
          total += -logSoftmaxAt(logits.subarray(j * width, (j + 1) * width), window[target]);
          scored++;
        }
      }
      o.onWindow?.(w + 1, windows);
    }
  } finally {
    runner.cache.clear();
  }
  if (scored === 0) throw new RangeError('no token could be scored (every window holds one token)');
  const nll = total / scored;
  return { tokens: scored, nll, perplexity: Math.exp(nll), windows };
}

/** log softmax(logits)[index], in float64. */
function logSoftmaxAt(logits: Float32Array, index: number): number {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
  return logits[index] - max - Math.log(sum);
}
