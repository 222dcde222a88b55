import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixture } from '../helpers/fixtures.ts';
import { Sampler, type SamplingParams } from '../../src/engine/generation/sampler.ts';
import { RequestError, validateRequest, type GenerateRequest } from '../../src/engine/generation/request.ts';
import { EngineClient } from '../../src/engine/worker/client.ts';

/**
 * The penalties, logit_bias, min_tokens and min_p, checked against the formulas written out here
 * (transformers' RepetitionPenaltyLogitsProcessor, OpenAI's frequency/presence definition, vLLM's
 * min_p and min_tokens), and per row in a mixed batch on a real engine.
 */
const VOCAB = 64;
/** Raw logits of both signs, in no particular order. */
const raw = Float32Array.from({ length: VOCAB }, (_, i) => 3 * Math.sin(i * 2.3) + 0.5 * Math.cos(i));
const prompt = [3, 5, 5, 9, 40];

/** Logits that make greedy pick `token` whatever the penalties (to feed a known output). */
const forcing = (token: number) => Float32Array.from({ length: VOCAB }, (_, i) => (i === token ? 1000 : 0));

/** A sampler that has produced `output` after `prompt`. */
function after(output: number[], p: Partial<SamplingParams>): Sampler {
  const s = new Sampler({ temperature: 0, topK: 0, topP: 1, ...p }, prompt);
  for (const t of output) expect(s.sample(forcing(t)).token).toBe(t);
  return s;
}

/** vLLM's steps before greedy, written out independently, in float64. */
function reference(
  logits: Float32Array,
  output: number[],
  p: Partial<SamplingParams> & { suppress?: number[] },
): number[] {
  const out = Array.from(logits);
  for (const t of p.suppress ?? []) out[t] = -Infinity;
  for (const [t, b] of p.logitBias ?? []) out[t] += b;
  const r = p.repetitionPenalty ?? 1;
  for (let t = 0; t < out.length; t++) {
    if (!prompt.includes(t) && !output.includes(t)) continue;
    out[t] = out[t] > 0 ? out[t] / r : out[t] * r; // transformers: torch.where(score < 0, score * p, score / p)
  }
  for (let t = 0; t < out.length; t++) {
    const count = output.filter((o) => o === t).length;
    out[t] -= (p.frequencyPenalty ?? 0) * count + (p.presencePenalty ?? 0) * (count > 0 ? 1 : 0);
  }
  return out;
}

function expectClose(actual: Float32Array, expected: number[]) {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    if (expected[i] === -Infinity) expect(actual[i]).toBe(-Infinity);
    else expect(Math.abs(actual[i] - expected[i])).toBeLessThan(1e-5);
  }
}

describe('logits processing, against the written-out formulas', () => {
  const output = [7, 3, 7, 12, 7, 40];
  const cases: Array<[string, Partial<SamplingParams> & { suppress?: number[] }]> = [
    ['frequency_penalty', { frequencyPenalty: 0.7 }],
    ['negative frequency_penalty', { frequencyPenalty: -1.5 }],
    ['presence_penalty', { presencePenalty: 1.3 }],
    ['repetition_penalty > 1', { repetitionPenalty: 1.3 }],
    ['repetition_penalty < 1', { repetitionPenalty: 0.6 }],
    [
      'logit_bias',
      {
        logitBias: new Map([
          [2, 5],
          [7, -100],
          [63, 0.25],
        ]),
      },
    ],
    [
      'all of them together',
      {
        frequencyPenalty: 0.4,
        presencePenalty: -0.9,
        repetitionPenalty: 1.7,
        logitBias: new Map([
          [7, 3],
          [11, -2],
        ]),
        suppress: [0, 1],
      },
    ],
  ];
  for (const [name, p] of cases) {
    it(`${name}: the logits equal the reference within 1e-5`, () => {
      const s = after(output, p);
      const processed = s.process(raw, p.suppress);
      expectClose(processed, reference(raw, output, p));
      expect(processed).not.toBe(raw); // a copy: the raw logits (and their logprobs) are untouched
    });
  }

  it('no parameter leaves the logits as they are, without a copy', () => {
    expect(after(output, {}).process(raw)).toBe(raw);
  });

  it('greedy takes the argmax of the processed logits', () => {
    const s = after([], { logitBias: new Map([[5, 100]]) });
    expect(s.sample(raw).token).toBe(5);
    const penalized = after(output, { presencePenalty: 2, frequencyPenalty: 2 });
    const expected = reference(raw, output, { presencePenalty: 2, frequencyPenalty: 2 });
    expect(penalized.sample(raw).token).toBe(expected.indexOf(Math.max(...expected)));
  });

  it('suppressed tokens (stop tokens before min_tokens) are never chosen', () => {
    const best = raw.indexOf(Math.max(...raw));
    const s = new Sampler({ temperature: 0, topK: 0, topP: 1 });
    expect(s.sample(raw, [best]).token).not.toBe(best);
    const hot = new Sampler({ temperature: 5, topK: 0, topP: 1, seed: 3 });
    for (let i = 0; i < 300; i++) expect(hot.sample(raw, [best, 0, 1]).token).not.toBeOneOf([best, 0, 1]);
  });

  it('min_p draws exactly the tokens at least min_p times as probable as the most probable, at the temperature', () => {
    for (const [minP, temperature] of [
      [0.1, 1],
      [0.3, 1.5],
      [0.05, 0.7],
    ]) {
      // vLLM: probs = softmax(logits / T); keep probs >= min_p * max(probs).
      const scaled = Array.from(raw, (l) => l / temperature);
      const max = Math.max(...scaled);
      const probs = scaled.map((l) => Math.exp(l - max));
      const kept = probs.flatMap((q, i) => (q >= minP * Math.max(...probs) ? [i] : []));
      const s = new Sampler({ temperature, topK: 0, topP: 1, minP, seed: 11 });
      const drawn = new Set(Array.from({ length: 4000 }, () => s.sample(raw).token));
      expect([...drawn].sort((a, b) => a - b)).toEqual(kept);
      expect(kept.length).toBeLessThan(VOCAB / 2); // the case cuts something
    }
  });

  it('reported logprobs stay those of the raw logits', () => {
    const s = new Sampler({ temperature: 0, topK: 0, topP: 1, logprobs: 0, logitBias: new Map([[5, 100]]) });
    const choice = s.sample(raw);
    const lse = Math.log(Array.from(raw).reduce((a, l) => a + Math.exp(l), 0));
    expect(choice.token).toBe(5);
    expect(choice.logprob!).toBeCloseTo(raw[5] - lse, 5);
  });
});

describe('validation of the sampling parameters', () => {
  const refused = (r: Partial<GenerateRequest>, param: string, message: RegExp) => {
    let error: unknown;
    try {
      validateRequest({ prompt: 'x', ...r });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(RequestError);
    expect((error as RequestError).param).toBe(param);
    expect((error as Error).message).toMatch(message);
  };

  it('refuses values out of range, naming the field', () => {
    refused({ frequencyPenalty: 2.5 }, 'frequency_penalty', /\[-2, 2\]/);
    refused({ presencePenalty: Number.NaN }, 'presence_penalty', /\[-2, 2\]/);
    refused({ repetitionPenalty: 0 }, 'repetition_penalty', /> 0/);
    refused({ minP: 1.5 }, 'min_p', /\[0, 1\]/);
    refused({ minTokens: 1.5 }, 'min_tokens', /integer/);
    refused({ minTokens: 10, maxTokens: 5 }, 'min_tokens', /over max_tokens 5/);
    refused({ logitBias: { abc: 1 } }, 'logit_bias', /not a token id/);
    refused({ logitBias: { 5: 101 } }, 'logit_bias', /\[-100, 100\]/);
    const big = Object.fromEntries(Array.from({ length: 301 }, (_, i) => [String(i), 1]));
    refused({ logitBias: big }, 'logit_bias', /301 entries, over 300/);
  });

  it('fills defaults that change nothing', () => {
    const { sampling } = validateRequest({ prompt: 'x', logitBias: { '7': -3 } });
    expect(sampling.minTokens).toBe(0);
    expect(sampling.logitBias).toEqual(new Map([[7, -3]]));
  });
});

describe('per row in a mixed batch, on stories260k', () => {
  let engine: EngineClient;
  beforeAll(async () => {
    engine = await EngineClient.start({ model: fixture('stories260k/model.bin'), threads: 2 });
  });
  afterAll(() => engine?.close());

  const base: GenerateRequest = { prompt: 'Once upon a time', maxTokens: 40, ignoreEos: true };
  const rows: GenerateRequest[] = [
    base,
    { ...base, frequencyPenalty: 1.5 },
    { ...base, presencePenalty: 2, temperature: 0.8, seed: 5 },
    { ...base, repetitionPenalty: 1.8 },
    { ...base, temperature: 1.2, minP: 0.2, seed: 9 },
    { ...base, logitBias: { '100': 3, '261': -100 } }, // 261: a token greedy picks
    { ...base, temperature: 0.9, seed: 5 },
  ];
  const tokensOf = async (r: GenerateRequest) => (await engine.generate(r).result).tokens;

  it('each row decodes exactly as it does alone, and the parameters change the output', async () => {
    const together = await Promise.all(rows.map(tokensOf));
    const alone: number[][] = [];
    for (const r of rows) alone.push(await tokensOf(r));
    expect(together).toEqual(alone);
    const [plain, ...others] = alone;
    others.forEach((o, i) => expect(o, `row ${i + 1}`).not.toEqual(plain));
    expect(alone[3].length).toBe(40);
    // The frequency penalty spreads the output over more distinct tokens than greedy alone.
    expect(new Set(alone[1]).size).toBeGreaterThan(new Set(plain).size);
    expect(plain).toContain(261);
    expect(alone[5]).not.toContain(261);
  });

  it('min_tokens holds back the end of sequence; without it the same prompt stops early', async () => {
    const free = await engine.generate({ prompt: 'Once upon a time', maxTokens: 400 }).result;
    expect(free.finishReason).toBe('stop');
    const n = free.completionTokens + 20;
    const held = await engine.generate({ prompt: 'Once upon a time', maxTokens: 400, minTokens: n }).result;
    expect(held.completionTokens).toBeGreaterThanOrEqual(n);
  });

  it('a logit_bias token id outside the vocabulary is refused by name', async () => {
    await expect(engine.generate({ ...base, logitBias: { '100000': 1 } }).result).rejects.toMatchObject({
      name: 'RequestError',
      param: 'logit_bias',
    });
  });
});
