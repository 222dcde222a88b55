import type { GrammarNode } from '../structured/schema.ts';

/**
 * Next-token choice from one row's logits: greedy (temperature 0) or sampling with temperature,
 * top-k and top-p, from a seeded generator so that the same seed gives the same output.
 * Log-probabilities are those of the model's own distribution (softmax of the raw logits), as
 * vLLM's default `raw_logprobs`.
 *
 * The logits are processed first, in vLLM's order (v1 sampler): the structured-output token mask,
 * masked stop tokens (min_tokens) and logit_bias; then the repetition, frequency and presence
 * penalties; then greedy takes the argmax, or sampling divides by the temperature, drops tokens
 * under min_p times the most likely one's probability, and applies top-k and top-p. Every row has
 * its own Sampler, so rows with and without these parameters decode in one batch.
 */
export interface SamplingParams {
  temperature: number;
  topK: number; // 0 = off
  topP: number; // 1 = off
  seed?: number;
  /** Alternatives to report per token; undefined = no logprobs at all. */
  logprobs?: number;
  /** OpenAI's: minus this times the token's count in the output so far. 0 = off. */
  frequencyPenalty?: number;
  /** OpenAI's: minus this for a token already in the output. 0 = off. */
  presencePenalty?: number;
  /** HF/vLLM's: a seen token's (prompt or output) positive logit divided by it, a negative one multiplied. 1 = off. */
  repetitionPenalty?: number;
  /** vLLM's: drop tokens less probable than min_p times the most probable one (after temperature). 0 = off. */
  minP?: number;
  /** Added to a token's logit (OpenAI's logit_bias, ids already checked against the vocabulary). */
  logitBias?: ReadonlyMap<number, number>;
  /** vLLM's: stop token ids (EOS included) are masked until this many tokens are out. 0 = off. */
  minTokens?: number;
  /** Structured output: the response_format's grammar; the row's Sequence masks tokens off it. */
  grammar?: GrammarNode;
}

export interface Choice {
  token: number;
  logprob?: number;
  top?: Array<{ token: number; logprob: number }>;
}

export class Sampler {
  private readonly random: () => number;
  private readonly penalties?: Penalties;

  constructor(
    private readonly p: SamplingParams,
    /** The row's prompt: tokens the repetition penalty counts as seen. */
    prompt: readonly number[] = [],
  ) {
    this.random = xoshiro128(p.seed ?? Math.floor(Math.random() * 2 ** 32));
    if (hasPenalties(p)) this.penalties = new Penalties(p, prompt);
  }

  /**
   * Picks the next token; `suppress`: tokens it may not pick now (stop tokens before min_tokens);
   * `allowed`: if given, only ids with allowed[id] = 1 (structured output's mask).
   */
  sample(logits: Float32Array, suppress?: Iterable<number>, allowed?: Uint8Array): Choice {
    const processed = this.process(logits, suppress, allowed);
    let token = this.p.temperature === 0 ? argmax(processed) : this.draw(processed);
    if (processed[token] === -Infinity) token = argmax(processed); // every candidate masked: the best left
    this.penalties?.observe(token);
    if (this.p.logprobs === undefined) return { token };
    const lse = logSumExp(logits);
    const top =
      this.p.logprobs > 0
        ? topIndices(logits, this.p.logprobs).map((t) => ({ token: t, logprob: logits[t] - lse }))
        : undefined;
    return { token, logprob: logits[token] - lse, top };
  }

  /**
   * The logits a choice is made from: the raw ones when no parameter changes them, else a copy
   * with stop tokens masked, bias added and penalties applied (vLLM's steps before greedy).
   */
  process(logits: Float32Array, suppress?: Iterable<number>, allowed?: Uint8Array): Float32Array {
    const bias = this.p.logitBias;
    const masked = suppress !== undefined && !isEmpty(suppress);
    if (!masked && !bias?.size && !this.penalties && !allowed) return logits;
    const out = Float32Array.from(logits);
    if (allowed) for (let t = 0; t < out.length; t++) if (!allowed[t]) out[t] = -Infinity;
    if (masked) for (const t of suppress) if (t < out.length) out[t] = -Infinity;
    if (bias) for (const [t, b] of bias) if (t < out.length) out[t] += b;
    this.penalties?.apply(out);
    return out;
  }

  private draw(logits: Float32Array): number {
    const { temperature, topK, topP } = this.p;
    const max = logits[argmax(logits)];
    const minP = this.p.minP ?? 0;
    if (minP > 0) logits = withMinP(logits, max, temperature, minP);
    let candidates = topK > 0 && topK < logits.length ? topIndices(logits, topK) : undefined;
    const weight = (i: number) => Math.exp((logits[i] - max) / temperature);
    if (topP < 1) candidates = nucleus(logits, weight, topP, candidates);
    const pool = candidates ?? Array.from(logits.keys());
    let total = 0;
    for (const i of pool) total += weight(i);
    let u = this.random() * total;
    for (const i of pool) {
      u -= weight(i);
      if (u < 0) return i;
    }
    return pool[pool.length - 1];
  }
}

const hasPenalties = (p: SamplingParams) =>
  !!p.frequencyPenalty || !!p.presencePenalty || (p.repetitionPenalty ?? 1) !== 1;

function isEmpty(tokens: Iterable<number>): boolean {
  for (const _ of tokens) return false;
  return true;
}

/**
 * The repetition, frequency and presence penalties of one row, as vLLM applies them: repetition
 * over the prompt and the output, frequency and presence over the output only. Counts grow with
 * each chosen token, so a step costs O(distinct tokens seen), not O(vocabulary).
 */
class Penalties {
  /** Tokens of the output so far, with their counts. */
  private readonly counts = new Map<number, number>();
  /** Tokens of the prompt and the output (kept only with a repetition penalty). */
  private readonly seen?: Set<number>;

  constructor(
    private readonly p: SamplingParams,
    prompt: readonly number[],
  ) {
    if ((p.repetitionPenalty ?? 1) !== 1) this.seen = new Set(prompt);
  }

  observe(token: number): void {
    this.counts.set(token, (this.counts.get(token) ?? 0) + 1);
    this.seen?.add(token);
  }

  apply(logits: Float32Array): void {
    const repetition = this.p.repetitionPenalty ?? 1;
    for (const t of this.seen ?? []) {
      if (t < logits.length) logits[t] = logits[t] > 0 ? logits[t] / repetition : logits[t] * repetition;
    }
    const frequency = this.p.frequencyPenalty ?? 0;
    const presence = this.p.presencePenalty ?? 0;
    if (!frequency && !presence) return;
    for (const [t, n] of this.counts) if (t < logits.length) logits[t] -= frequency * n + presence;
  }
}

/**
 * vLLM's min_p: tokens whose probability (after temperature) is under min_p times the largest
 * probability become -Infinity. p_i < min_p * p_max is (l_i - l_max) / T < ln(min_p).
 */
function withMinP(logits: Float32Array, max: number, temperature: number, minP: number): Float32Array {
  const out = Float32Array.from(logits);
  const floor = Math.log(minP);
  for (let i = 0; i < out.length; i++) if ((out[i] - max) / temperature < floor) out[i] = -Infinity;
  return out;
}

export function argmax(a: Float32Array): number {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i] > a[best]) best = i;
  return best;
}

function logSumExp(a: Float32Array): number {
  const max = a[argmax(a)];
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.exp(a[i] - max);
  return max + Math.log(sum);
}

/** The k largest entries' indices, best first (ties: lower index first). */
function topIndices(a: Float32Array, k: number): number[] {
  const best: number[] = [];
  for (let i = 0; i < a.length; i++) {
    if (best.length === k && a[i] <= a[best[k - 1]]) continue;
    let at = best.length;
    while (at > 0 && a[best[at - 1]] < a[i]) at--;
    best.splice(at, 0, i);
    if (best.length > k) best.pop();
  }
  return best;
}

/**
 * The smallest set of most probable tokens whose probability reaches `p`. Exact, in O(V): tokens
 * are bucketed by log2 of their weight, and only the bucket where the mass crosses `p` is sorted.
 */
function nucleus(logits: Float32Array, weight: (i: number) => number, p: number, among?: number[]): number[] {
  const pool = among ?? Array.from(logits.keys());
  const bucketOf = new Uint8Array(logits.length);
  const mass = new Float64Array(64);
  let total = 0;
  for (const i of pool) {
    const w = weight(i);
    const b = w > 0 ? Math.min(63, Math.floor(-Math.log2(w))) : 63;
    bucketOf[i] = b;
    mass[b] += w;
    total += w;
  }
  let cut = 0;
  for (let acc = 0; cut < 63; cut++) {
    acc += mass[cut];
    if (acc >= p * total) break;
  }
  const kept = pool.filter((i) => bucketOf[i] <= cut).sort((x, y) => logits[y] - logits[x] || x - y);
  const out: number[] = [];
  let acc = 0;
  for (const i of kept) {
    out.push(i);
    acc += weight(i);
    if (acc >= p * total) break;
  }
  return out;
}

/** xoshiro128** (Blackman & Vigna), seeded through splitmix32: small, fast and reproducible. */
function xoshiro128(seed: number): () => number {
  let x = seed >>> 0;
  const splitmix = () => {
    x = (x + 0x9e3779b9) >>> 0;
    let z = x;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
  let [a, b, c, d] = [splitmix(), splitmix(), splitmix(), splitmix()];
  return () => {
    const result = Math.imul(rotl(Math.imul(b, 5) >>> 0, 7), 9) >>> 0;
    const t = (b << 9) >>> 0;
    c ^= a;
    d ^= b;
    b ^= c;
    a ^= d;
    c ^= t;
    d = rotl(d, 11);
    return result / 2 ** 32;
  };
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
