import { describe, expect, it } from 'vitest';
import { Sampler, type SamplingParams } from '../../src/engine/generation/sampler.ts';

const sampler = (p: Partial<SamplingParams>) => new Sampler({ temperature: 1, topK: 0, topP: 1, ...p });
const draws = (s: Sampler, logits: Float32Array, n = 400) => Array.from({ length: n }, () => s.sample(logits).token);
/** A skewed distribution over 200 tokens, in no particular order. */
const logits = Float32Array.from({ length: 200 }, (_, i) => 4 * Math.sin(i * 1.7) - i / 40);
/** Indices by descending logit (ties: lower index first). */
const ranked = Array.from(logits.keys()).sort((a, b) => logits[b] - logits[a] || a - b);

describe('sampler', () => {
  it('greedy picks the largest logit, the first one on ties, whatever the seed', () => {
    const tied = Float32Array.from([1, 3, 0, 3, 2]);
    expect(sampler({ temperature: 0, seed: 1 }).sample(tied).token).toBe(1);
    expect(sampler({ temperature: 0, seed: 2 }).sample(tied).token).toBe(1);
    expect(sampler({ temperature: 0 }).sample(logits).token).toBe(ranked[0]);
  });

  it('the same seed draws the same tokens; another seed other ones', () => {
    const [a, b, c] = [7, 7, 8].map((seed) => draws(sampler({ temperature: 0.8, topP: 0.95, seed }), logits, 64));
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
    expect(new Set(a).size).toBeGreaterThan(3); // it samples, not picks
  });

  it('top-k draws only among the k largest, and from all of them', () => {
    const picked = new Set(draws(sampler({ temperature: 2, topK: 3, seed: 1 }), logits));
    expect([...picked].sort()).toEqual(ranked.slice(0, 3).sort());
  });

  it('top-p draws only from the smallest set of most probable tokens that reaches p', () => {
    for (const [topP, temperature] of [
      [0.5, 1],
      [0.9, 1],
      [0.9, 0.5],
    ]) {
      const weights = ranked.map((i) => Math.exp(logits[i] / temperature));
      const total = weights.reduce((x, y) => x + y);
      let mass = 0;
      const nucleus = ranked.filter((_, r) => (mass += weights[r]) - weights[r] < topP * total);
      const picked = new Set(draws(sampler({ temperature, topP, seed: 3 }), logits, 2000));
      expect(nucleus.length).toBeGreaterThan(1);
      expect([...picked].every((t) => nucleus.includes(t))).toBe(true);
      expect(picked.has(nucleus[0]) && picked.size > 1).toBe(true);
    }
  });

  it('reports log-probabilities of the model distribution: they sum to 1 after exp', () => {
    const s = sampler({ temperature: 0.5, seed: 4, logprobs: logits.length });
    const choice = s.sample(logits);
    const top = choice.top!;
    expect(top.map((t) => t.token)).toEqual(ranked);
    expect(top.reduce((sum, t) => sum + Math.exp(t.logprob), 0)).toBeCloseTo(1, 9);
    expect(choice.logprob).toBe(top.find((t) => t.token === choice.token)!.logprob);
    expect(sampler({ temperature: 0 }).sample(logits).logprob).toBeUndefined(); // only when asked
  });
});
