import { describe, expect, it } from 'vitest';
import { fixture } from '../helpers/fixtures.ts';
import { loadTokenizer } from '../../src/engine/tokenizer/load.ts';
import type { Tokenizer } from '../../src/engine/tokenizer/types.ts';
import { compileResponseFormat, SchemaError } from '../../src/engine/structured/schema.ts';
import { JsonConstraint } from '../../src/engine/structured/constraint.ts';
import { Vocabulary } from '../../src/engine/structured/vocabulary.ts';
import { RequestError, validateRequest } from '../../src/engine/generation/request.ts';
import { TaskTokenizer } from '../../src/engine/tokenizer/task-tokens.ts';
import { SCHEMAS, jsonSchemaFormat, validatorOf } from './structured-suite.ts';

/**
 * Structured output below the model: schema compilation and its refusals, each tokenizer's token
 * bytes against its own decoder, and the token mask driving decoding from random logits over the
 * real vocabularies (llama2.c, GPT-2 byte-level BPE, sentencepiece-style byte fallback): every
 * output parses and validates, checked by zod's JSON Schema reader.
 */
const TOKENIZERS: Record<string, () => Tokenizer> = {
  'llama2.c (stories260k)': () => loadTokenizer(fixture('stories260k/tokenizer.bin')),
  'GPT-2 byte-level BPE (tiny-gpt2)': () => loadTokenizer(fixture('tiny-gpt2')),
  'byte-fallback BPE (archs/qwen2)': () => loadTokenizer(fixture('archs/qwen2')),
};

const refusal = (format: unknown): string => {
  try {
    compileResponseFormat(format);
  } catch (e) {
    expect(e).toBeInstanceOf(SchemaError);
    return (e as Error).message;
  }
  throw new Error('compiled');
};
const schema = (s: unknown) => jsonSchemaFormat('s', s as Record<string, unknown>);

describe('response_format compilation', () => {
  it('text is no constraint; json_object is any object; every suite schema compiles', () => {
    expect(compileResponseFormat({ type: 'text' })).toBeUndefined();
    expect(compileResponseFormat(undefined)).toBeUndefined();
    expect(compileResponseFormat({ type: 'json_object' })).toMatchObject({ kind: 'object', props: [] });
    for (const [name, s] of Object.entries(SCHEMAS)) expect(compileResponseFormat(schema(s)), name).toBeDefined();
  });

  it('refuses unsupported keywords by name, and what no output could satisfy', () => {
    expect(refusal(schema({ type: 'string', not: { const: 'a' } }))).toMatch(
      /unsupported JSON Schema keyword "not" at #/,
    );
    expect(refusal(schema({ type: 'object', properties: { d: { type: 'string', format: 'date' } } }))).toMatch(
      /"format" at #\/properties\/d/,
    );
    expect(refusal(schema({ oneOf: [{ type: 'string' }] }))).toMatch(/"oneOf"/);
    expect(refusal(schema({ type: 'integer', minimum: 5 }))).toMatch(/"minimum"/);
    expect(refusal(schema({ type: 'number', maximum: 10 }))).toMatch(/"maximum"/);
    expect(refusal(schema({ type: 'array', uniqueItems: true }))).toMatch(/"uniqueItems"/);
    expect(refusal(schema({ type: 'string', minLength: 5, maxLength: 2 }))).toMatch(/minLength 5 is over maxLength 2/);
    expect(refusal(schema({ type: 'object', properties: {}, required: ['a'] }))).toMatch(/"a" .* not in properties/);
    expect(refusal(schema({ type: 'date' }))).toMatch(/unsupported type "date"/);
    expect(refusal({ type: 'xml' })).toMatch(/response_format.type must be/);
    const tree = { $defs: { t: { type: 'array', items: { $ref: '#/$defs/t' } } }, $ref: '#/$defs/t' };
    expect(refusal(schema(tree))).toMatch(/recursive \$ref/);
    expect(refusal(schema({ $ref: 'https://example.com/s.json' }))).toMatch(/only "#\/\$defs\/NAME"/);
  });

  it('refuses patterns beyond the simple subset, naming what is not supported', () => {
    const pattern = (p: string) => refusal(schema({ type: 'string', pattern: p }));
    expect(pattern('^(?=a)b$')).toMatch(/lookaround/);
    expect(pattern('a\\bc')).toMatch(/escape \\b is not supported/);
    expect(pattern('a{2,100}')).toMatch(/bounds up to 64/);
    expect(pattern('é+')).toMatch(/printable ASCII only/);
    expect(pattern('a^b')).toMatch(/anchors are supported only at the very start and end/);
    expect(pattern('(ab')).toMatch(/not closed/);
    expect(pattern('(a|b)*a(a|b){9}')).toMatch(/too large \(over 512 states\)/); // 2^10 subsets
  });

  it('bounds the work: schema bytes, depth, enum values, expanded nodes', () => {
    expect(refusal(schema({ enum: Array.from({ length: 10000 }, (_, i) => 'value' + i) }))).toMatch(/bytes, over/);
    expect(refusal(schema({ enum: Array.from({ length: 300 }, (_, i) => i) }))).toMatch(/300 values, over 256/);
    let deep: Record<string, unknown> = { type: 'string' };
    for (let i = 0; i < 30; i++) deep = { type: 'array', items: deep };
    expect(refusal(schema(deep))).toMatch(/nests deeper than 24/);
    // A $ref used four times at every level: small in bytes, 4^7 nodes expanded.
    const defs: Record<string, unknown> = { d0: { type: 'integer' } };
    for (let i = 1; i < 8; i++) {
      const ref = { $ref: `#/$defs/d${i - 1}` };
      defs[`d${i}`] = { type: 'object', properties: { a: ref, b: ref, c: ref, d: ref } };
    }
    expect(refusal(schema({ $defs: defs, $ref: '#/$defs/d7' }))).toMatch(/expands to over 4096 nodes/);
  });

  it('the engine refuses a bad response_format as a RequestError on param response_format', () => {
    let error: unknown;
    try {
      validateRequest({ prompt: 'x', responseFormat: schema({ type: 'string', allOf: [] }) });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(RequestError);
    expect(error).toMatchObject({ param: 'response_format', message: expect.stringMatching(/"allOf"/) });
  });
});

describe.each(Object.entries(TOKENIZERS))('%s', (_name, load) => {
  const tokenizer = load();

  it("each token's bytes are what the tokenizer's stream decoder prints for it mid-text", () => {
    const context = tokenizer.encodePlain('The cat');
    const strict = new TextDecoder('utf-8', { fatal: true });
    let checked = 0;
    const step = Math.max(1, Math.floor(tokenizer.size / 3000));
    for (let id = 0; id < tokenizer.size; id += step) {
      const bytes = tokenizer.tokenBytes(id);
      if (!bytes?.length || tokenizer.stopIds.includes(id)) continue;
      let text: string;
      try {
        text = strict.decode(bytes);
      } catch {
        continue; // part of a character: checked by the decoding runs below
      }
      const d = tokenizer.streamDecoder(context);
      const printed = d.push(id) + d.flush();
      // GPT-2's decoder cleans up a space before punctuation (clean_up_tokenization_spaces): the
      // JSON stays whole, since the grammar puts spaces only before a value.
      const cleaned = /^ [.,!?']/.test(text) && printed === text.slice(1);
      if (!cleaned) expect(printed, `id ${id}`).toBe(text);
      checked++;
    }
    expect(checked).toBeGreaterThan(200);
  });

  it('random logits through the mask: every output parses and validates, for every suite schema', () => {
    const vocabulary = Vocabulary.of(tokenizer);
    const prompt = tokenizer.encode('Answer in JSON:');
    const stops = tokenizer.stopIds.length ? tokenizer.stopIds : [];
    // Structural bytes get a bonus so that strings and arrays end in a few steps.
    const bonus = Float32Array.from({ length: tokenizer.size }, (_, id) => {
      const b = tokenizer.tokenBytes(id);
      return b && [...b].some((c) => c === 0x22 || c === 0x5d || c === 0x7d || c === 0x2c) ? 4 : 0;
    });
    let completed = 0;
    for (const [name, s] of Object.entries({ ...SCHEMAS, json_object: undefined })) {
      const format = s ? jsonSchemaFormat(name, s) : { type: 'json_object' };
      const validator = s ? validatorOf(s) : undefined;
      for (const seed of [1, 2, 3]) {
        const c = new JsonConstraint(compileResponseFormat(format)!, vocabulary, (id) => tokenizer.tokenBytes(id));
        let random = seed * 7919;
        const decoder = tokenizer.streamDecoder(prompt);
        let text = '';
        let ended = false;
        for (let step = 0; step < 400 && !ended; step++) {
          const allowed = c.allowed(stops);
          if (seed === 1) {
            // A cached mask is the one the grammar gives afresh (stop ids aside).
            const fresh = (c as any).compute() as Uint8Array;
            for (const id of stops) fresh[id] = allowed[id];
            expect(Buffer.compare(fresh, allowed), `${name}: cached mask after ${JSON.stringify(text)}`).toBe(0);
          }
          // A random choice among the allowed tokens (structural ones favoured).
          let token = -1;
          let best = -Infinity;
          for (let id = 0; id < allowed.length; id++) {
            if (!allowed[id]) continue;
            random = (Math.imul(random, 1103515245) + 12345) >>> 0;
            const score = bonus[id] + (random / 2 ** 32) * 3;
            if (score > best) [token, best] = [id, score];
          }
          expect(token, `${name}: some token is allowed`).toBeGreaterThanOrEqual(0);
          if (stops.includes(token)) {
            ended = true;
            break;
          }
          expect(c.accept(token), `${name}: token ${token} after ${JSON.stringify(text)}`).toBe(true);
          text += decoder.push(token);
          ended = c.closed;
        }
        text += decoder.flush();
        if (!ended) continue; // cut: finish_reason length
        completed++;
        let value: unknown;
        expect(() => (value = JSON.parse(text)), `${name}: ${text}`).not.toThrow();
        if (validator) expect(validator.safeParse(value).success, `${name}: ${text}`).toBe(true);
        else expect(value).toBeTypeOf('object');
      }
    }
    expect(completed).toBeGreaterThan(0.9 * 3 * (Object.keys(SCHEMAS).length + 1));
  });

  it("an adapter's task tokens (ids past the vocabulary) are masked out", () => {
    const withTasks = new TaskTokenizer(tokenizer, tokenizer.size, ['<|task|>']);
    const c = new JsonConstraint(compileResponseFormat({ type: 'json_object' })!, Vocabulary.of(withTasks), (id) =>
      withTasks.tokenBytes(id),
    );
    const mask = c.allowed([]);
    expect(mask.length).toBe(tokenizer.size + 1);
    expect(mask[tokenizer.size]).toBe(0);
    expect(mask.includes(1)).toBe(true);
  });
});
