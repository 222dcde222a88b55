/**
 * Next-token choice from one row's logits: greedy (temperature 0) or sampling with temperature,
 * top-k and top-p, from a seeded generator so that the same seed gives the same output.
 * Log-probabilities are those of the model's own distribution (softmax of the raw logits).
 */
export interface SamplingParams {
  temperature: number;
  topK: number; // 0 = off
  topP: number; // 1 = off
  seed?: number;
  /** Alternatives to report per token; undefined = no logprobs at all. */
  logprobs?: number;
}

export interface Choice {
  token: number;
  logprob?: number;
  top?: Array<{ token: number; logprob: number }>;
}

export class Sampler {
  private readonly random: () => number;

  constructor(private readonly p: SamplingParams) {
    this.random = xoshiro128(p.seed ?? Math.floor(Math.random() * 2 ** 32));
  }

  sample(logits: Float32Array): Choice {
    const token = this.p.temperature === 0 ? argmax(logits) : this.draw(logits);
    if (this.p.logprobs === undefined) return { token };
    const lse = logSumExp(logits);
    const top =
      this.p.logprobs > 0
        ? topIndices(logits, this.p.logprobs).map((t) => ({ token: t, logprob: logits[t] - lse }))
        : undefined;
    return { token, logprob: logits[token] - lse, top };
  }

  private draw(logits: Float32Array): number {
    const { temperature, topK, topP } = this.p;
    const max = logits[argmax(logits)];
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
