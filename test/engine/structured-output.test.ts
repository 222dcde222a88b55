import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixture } from '../helpers/fixtures.ts';
import { EngineClient } from '../../src/engine/worker/client.ts';
import type { GenerateRequest } from '../../src/engine/generation/request.ts';
import { SCHEMAS, jsonSchemaFormat, validatorOf } from './structured-suite.ts';

/**
 * Structured output on real models: every suite schema, greedy and sampled (fixed seeds), on
 * stories260K (llama2.c tokenizer), tiny GPT-2 (byte-level BPE) and the qwen2 architecture fixture
 * (byte-fallback BPE). Every completed output parses and validates (zod's JSON Schema reader); a
 * cut one says finish_reason "length". Mixed batches leave unconstrained rows' tokens unchanged.
 */
/** Prompts: texts, or for tiny GPT-2 (a 1000-token model with GPT-2's tokenizer) ids it knows. */
const text = (a: string) => () => ({ prompt: a });
const MODELS: Array<[string, string, string | undefined, (a: string) => () => GenerateRequest]> = [
  ['stories260K', 'stories260k/model.bin', 'stories260k/adapters/vlm-max', text],
  ['tiny GPT-2', 'tiny-gpt2', undefined, (a) => () => ({ promptIds: a.length % 2 ? [40, 373, 257] : [464, 318] })],
  ['qwen2 architecture', 'archs/qwen2', undefined, text],
];
const MAX_TOKENS = 120;

describe.each(MODELS)('%s', (_name, model, vlmAdapter, promptOf) => {
  const p = (a: string) => promptOf(a)();
  let engine: EngineClient;
  beforeAll(async () => {
    engine = await EngineClient.start({ model: fixture(model), threads: 2 });
    if (vlmAdapter) await engine.addAdapterFolder('vlm', fixture(vlmAdapter));
  });
  afterAll(() => engine?.close());

  it('every suite schema, greedy and sampled: every completed output parses and validates', async () => {
    const runs = Object.entries(SCHEMAS).flatMap(([name, schema]) =>
      [{ temperature: 0 }, { temperature: 1, seed: 7 }, { temperature: 0.8, topP: 0.9, seed: 3 }].map((sampling) => ({
        name,
        schema,
        request: {
          ...p('The answer, as JSON:'),
          maxTokens: MAX_TOKENS,
          responseFormat: jsonSchemaFormat(name, schema),
          ...sampling,
        } satisfies GenerateRequest,
      })),
    );
    const results = await Promise.all(runs.map((r) => engine.generate(r.request).result));
    let completed = 0;
    results.forEach((result, i) => {
      const { name, schema, request } = runs[i];
      const label = `${name} (temperature ${request.temperature}): ${result.text}`;
      if (result.finishReason === 'length') {
        expect(result.completionTokens, label).toBe(MAX_TOKENS);
        return;
      }
      expect(result.finishReason, label).toBe('stop');
      completed++;
      let value: unknown;
      expect(() => (value = JSON.parse(result.text)), label).not.toThrow();
      expect(validatorOf(schema).safeParse(value).success, label).toBe(true);
    });
    // Most finish within the budget (a tiny model's free-text strings may run long).
    expect(completed).toBeGreaterThan(runs.length * 0.6);
  });

  it('json_object gives an object; max_tokens cuts with finish_reason "length"', async () => {
    const free = await engine.generate({
      ...p('JSON:'),
      maxTokens: 200,
      temperature: 0.7,
      seed: 1,
      responseFormat: { type: 'json_object' },
    }).result;
    if (free.finishReason === 'stop') expect(JSON.parse(free.text)).toBeTypeOf('object');
    else expect(free.text.startsWith('{') || free.text.startsWith(' {')).toBe(true);
    const schema = { type: 'array', items: { type: 'string' }, minItems: 50 };
    const cut = await engine.generate({ ...p('x'), maxTokens: 5, responseFormat: jsonSchemaFormat('a', schema) })
      .result;
    expect(cut.finishReason).toBe('length');
    expect(cut.completionTokens).toBe(5);
    expect(() => JSON.parse(cut.text)).toThrow();
  });

  it('the row ends as soon as the value is complete, without waiting for end of sequence', async () => {
    const r = await engine.generate({
      ...p('Yes or no?'),
      maxTokens: 50,
      ignoreEos: true,
      responseFormat: jsonSchemaFormat('b', { type: 'boolean' }),
    }).result;
    expect(r.finishReason).toBe('stop');
    expect(['true', 'false']).toContain(r.text.trim());
  });

  it('a mixed batch: unconstrained rows decode exactly as they do alone', async () => {
    const plain: GenerateRequest[] = [
      { ...p('Once upon a time'), maxTokens: 30, ignoreEos: true },
      { ...p('The cat'), maxTokens: 30, temperature: 0.9, seed: 4, ignoreEos: true },
      ...(vlmAdapter ? [{ ...p('Once upon a time'), maxTokens: 30, adapter: 'vlm', ignoreEos: true }] : []),
    ];
    const constrained: GenerateRequest[] = [
      { ...p('JSON:'), maxTokens: 30, responseFormat: jsonSchemaFormat('o', SCHEMAS['flat object']) },
      { ...p('JSON:'), maxTokens: 30, temperature: 1, seed: 2, responseFormat: { type: 'json_object' } },
      ...(vlmAdapter
        ? [{ ...p('JSON:'), maxTokens: 30, adapter: 'vlm', responseFormat: jsonSchemaFormat('n', { type: 'integer' }) }]
        : []),
    ];
    const alone: number[][] = [];
    for (const r of plain) alone.push((await engine.generate(r).result).tokens);
    const together = await Promise.all([...plain, ...constrained].map((r) => engine.generate(r).result));
    expect(together.slice(0, plain.length).map((r) => r.tokens)).toEqual(alone);
    for (const r of together.slice(plain.length)) {
      if (r.finishReason === 'stop') expect(() => JSON.parse(r.text)).not.toThrow();
    }
  });

  it('refuses an unsupported keyword by name', async () => {
    const bad = jsonSchemaFormat('p', { type: 'string', format: 'email' });
    await expect(engine.generate({ ...p('x'), responseFormat: bad }).result).rejects.toMatchObject({
      name: 'RequestError',
      param: 'response_format',
      message: expect.stringMatching(/"format"/),
    });
  });
});
