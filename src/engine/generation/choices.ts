import type { SamplingParams } from './sampler.ts';
import type { GenerateResult } from './request.ts';
import type { SequenceSink } from './sequence.ts';

/**
 * A request's n choices (OpenAI's `n`): one sequence prefills the prompt, n - 1 forks copy its
 * cache row and sample on their own (Engine.start). Here: what each choice samples with, and how
 * their results become the request's one stream and one result.
 */

/**
 * The sinks of a request's choices: tokens pass on marked with their choice's index, and one result
 * (completion tokens summed, each choice's end in `choices`) once every choice is done. The first
 * error ends the request (`stop` cancels the choices still running).
 */
export function choiceSinks(n: number, sink: SequenceSink, stop: () => void): SequenceSink[] {
  if (n === 1) return [sink];
  const results: GenerateResult[] = [];
  let left = n;
  let failed = false;
  return Array.from({ length: n }, (_, index) => ({
    onTokens: (events) => sink.onTokens(events.map((e) => ({ ...e, index }))),
    onDone: (result) => {
      results[index] = result;
      if (--left > 0 || failed) return;
      sink.onDone({
        ...results[0],
        completionTokens: results.reduce((sum, r) => sum + r.completionTokens, 0),
        choices: results.map((r, i) => ({
          index: i,
          tokens: r.tokens,
          text: r.text,
          finishReason: r.finishReason,
          completionTokens: r.completionTokens,
        })),
      });
    },
    onError: (error) => {
      if (failed) return;
      failed = true;
      stop();
      sink.onError(error);
    },
  }));
}

/** Choice i's sampling: choice 0 keeps the request's seed, the others get seeds derived from it (or random ones). */
export function choiceSampling(s: SamplingParams, i: number): SamplingParams {
  if (i === 0 || s.seed === undefined) return s;
  // murmur3's finalizer over (seed, i): well-spread 32-bit seeds, the same for the same request.
  let h = (s.seed ^ Math.imul(i, 0x9e3779b9)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return { ...s, seed: (h ^ (h >>> 16)) >>> 0 };
}
