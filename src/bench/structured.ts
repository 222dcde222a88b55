import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { EngineClient } from '../engine/worker/client.ts';
import { GPT2_SMALL, randomWeights, writeGpt2Folder } from '../engine/synthetic.ts';
import { loadTokenizer } from '../engine/tokenizer/load.ts';
import { compileResponseFormat } from '../engine/structured/schema.ts';
import { JsonConstraint } from '../engine/structured/constraint.ts';
import { Vocabulary } from '../engine/structured/vocabulary.ts';
import { decodeRateOf, median, round } from './engine.ts';

/** Structured output's token-mask cost against a batch-1 decode step (`versa bench engine --structured-only`). */
export interface StructuredFigures {
  /** Batch-1 decode, plain and with a json_schema response_format, alternating; tokens/s. */
  decode_tps_b1_plain: number;
  decode_tps_b1_structured: number;
  /** Extra time per decode step with the mask, over the plain step: 0.05 = 5 %. */
  structured_step_overhead: number;
  /** The mask alone, per step, replaying the structured run's tokens: caches warm, and the first replay. */
  mask_ms_per_step: number;
  mask_ms_per_step_cold: number;
  plain_step_ms: number;
  /** mask_ms_per_step / plain_step_ms: the target is under 0.1. */
  mask_vs_step: number;
  /** Building the vocabulary's trie and token classes, once per tokenizer. */
  vocabulary_build_ms: number;
}

/** A schema with structure and free text: arrays of objects with strings, integers and enums. */
const SCHEMA = {
  type: 'array',
  items: {
    type: 'object',
    properties: {
      name: { type: 'string' },
      count: { type: 'integer' },
      kind: { enum: ['a', 'b', 'c'] },
      tags: { type: 'array', items: { type: 'string' } },
    },
    required: ['name', 'count', 'kind', 'tags'],
    additionalProperties: false,
  },
};
const FORMAT = { type: 'json_schema', json_schema: { name: 'bench', schema: SCHEMA, strict: true } };
const TOKENS = 96;
const ROUNDS = 5;

/**
 * On the GPT-2-small-sized model (seeded random weights) with GPT-2's tokenizer (default: the
 * repository's test/fixtures/tiny-gpt2/tokenizer.json), batch-1 decode with and without a schema,
 * alternating; then the mask's own time per step over the same tokens.
 */
export async function structuredFigures(
  threads: number,
  dir: string,
  log: (line: string) => void,
  tokenizerPath = resolve('test/fixtures/tiny-gpt2'),
): Promise<StructuredFigures> {
  if (!existsSync(tokenizerPath))
    throw new Error(`${tokenizerPath}: no GPT-2 tokenizer (give --tokenizer, or run from the repository root)`);
  const modelPath = join(dir, 'structured-model');
  log('writing a GPT-2-small-sized model with seeded random weights');
  writeGpt2Folder(modelPath, GPT2_SMALL, randomWeights(GPT2_SMALL, 1));
  const tokenizer = loadTokenizer(tokenizerPath);
  const engine = await EngineClient.start({ model: modelPath, tokenizer: tokenizerPath, threads, maxBatch: 4 });
  const prompt = tokenizer.encode('Items as JSON:');
  const sampling = { temperature: 0.8, seed: 1 };
  const rate = (structured: boolean) =>
    decodeRateOf(engine, [undefined], TOKENS, prompt, undefined, {
      ...sampling,
      ...(structured ? { responseFormat: FORMAT } : {}),
    });
  try {
    log('decode at batch 1, plain and structured, alternating');
    await rate(true); // warm-up: the engine builds the vocabulary's trie once
    const plain: number[] = [];
    const structured: number[] = [];
    for (let k = 0; k < ROUNDS; k++) {
      plain.push(await rate(false));
      structured.push(await rate(true));
    }
    const request = { promptIds: prompt, maxTokens: TOKENS, ignoreEos: true, responseFormat: FORMAT, ...sampling };
    const { tokens } = await engine.generate(request).result;
    log('the mask alone, replaying the structured tokens');
    const started = performance.now();
    const vocabulary = Vocabulary.of(tokenizer);
    const buildMs = performance.now() - started;
    const grammar = compileResponseFormat(FORMAT)!;
    // The first replay meets every state afresh; later ones find structural states' masks cached.
    const replays = Array.from({ length: ROUNDS }, () => {
      const c = new JsonConstraint(grammar, vocabulary, (id) => tokenizer.tokenBytes(id));
      let ms = 0;
      let steps = 0;
      for (const t of tokens) {
        const t0 = performance.now();
        c.allowed(tokenizer.stopIds);
        ms += performance.now() - t0;
        steps++;
        if (!c.accept(t)) break;
      }
      return ms / steps;
    });
    const [cold, ...warm] = replays;
    const maskMs = median(warm);
    const plainTps = median(plain);
    const structuredTps = median(structured);
    return {
      decode_tps_b1_plain: round(plainTps),
      decode_tps_b1_structured: round(structuredTps),
      structured_step_overhead: round(plainTps / structuredTps - 1, 3),
      mask_ms_per_step: round(maskMs, 3),
      mask_ms_per_step_cold: round(cold, 3),
      plain_step_ms: round(1000 / plainTps, 2),
      mask_vs_step: round(maskMs / (1000 / plainTps), 4),
      vocabulary_build_ms: round(buildMs),
    };
  } finally {
    await engine.close();
  }
}
