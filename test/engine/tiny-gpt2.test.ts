import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixture, maxAbsDiff, readF32, readJson } from '../helpers/fixtures.ts';
import { adapterFor, greedyBatch, runnerFor, teacherForce } from '../helpers/engine.ts';
import type { ModelRunner } from '../../src/engine/runtime/runner.ts';
import type { Adapter } from '../../src/engine/adapters/read.ts';
import { EngineClient } from '../../src/engine/worker/client.ts';
import { RequestError } from '../../src/engine/generation/request.ts';

/** onnxruntime-genai's tiny random GPT-2, with its greedy golden and PyTorch-made adapter goldens. */
describe('tiny-gpt2 conformance', () => {
  let runner: ModelRunner;
  const adapters = new Map<string, Adapter>();
  beforeAll(async () => {
    runner = await runnerFor(fixture('tiny-gpt2'));
    for (const name of ['vglm-a', 'vglm-b', 'lora-c'])
      adapters.set(name, adapterFor(runner, fixture('tiny-gpt2/adapters', name)));
  });
  afterAll(() => runner?.release());

  it('reproduces onnxruntime-genai GreedySearchGptFp32 (leading zeros are ordinary tokens)', async () => {
    const g = readJson('tiny-gpt2/expected/greedy_genai_gptfp32.json');
    const steps = g.max_length - g.input_ids[0].length;
    const { tokens } = await greedyBatch(
      runner,
      g.input_ids.map((p: number[]) => ({ prompt: p })),
      steps,
    );
    g.expected_output.forEach((row: number[], i: number) => expect([...g.input_ids[i], ...tokens[i]]).toEqual(row));
  });

  it('matches the left-padded batch logits within 1e-5 (each row run at its own length)', async () => {
    const meta = readJson('tiny-gpt2/expected/logits_batch2.json');
    const expected = readF32('tiny-gpt2/expected/logits_batch2.f32');
    const rows = meta.input_ids.map((ids: number[], b: number) =>
      ids.filter((_, t) => meta.attention_mask[b][t] === 1),
    );
    for (let b = 0; b < rows.length; b++) {
      const logits = await teacherForce(runner, rows[b]);
      const pad = 6 - rows[b].length;
      logits.forEach((l, t) => {
        const at = (b * 6 + pad + t) * 1000;
        expect(maxAbsDiff(l, expected.subarray(at, at + 1000))).toBeLessThan(1e-5);
      });
    }
  });

  it('padded rows of different lengths decode like each row alone', async () => {
    const prompts = [[98, 15, 214, 7, 801, 42], [52, 204, 11], [9]];
    const together = await greedyBatch(
      runner,
      prompts.map((prompt) => ({ prompt })),
      12,
    );
    for (let i = 0; i < prompts.length; i++) {
      const alone = await greedyBatch(runner, [{ prompt: prompts[i] }], 12);
      expect(together.tokens[i]).toEqual(alone.tokens[0]);
      expect(maxAbsDiff(flatten(together.logits[i]), flatten(alone.logits[0]))).toBeLessThan(1e-5);
    }
  });

  for (const variant of ['base', 'vglm-a', 'vglm-b', 'lora-c']) {
    it(`${variant}: greedy tokens and every position's logits match PyTorch within 1e-5`, async () => {
      const spec = readJson('tiny-gpt2/expected/adapters', `${variant}.json`);
      const adapter = adapters.get(variant);
      for (const p of spec.prompts) {
        const { tokens } = await greedyBatch(runner, [{ prompt: p.input_ids, adapter }], spec.steps);
        expect(tokens[0], `prompt ${p.prompt_index}`).toEqual(p.greedy_new_tokens);
        const logits = await teacherForce(runner, [...p.input_ids, ...p.greedy_new_tokens.slice(0, -1)], adapter);
        expect(logits[0].length).toBe(spec.vocab_size_of_logits);
        expect(maxAbsDiff(flatten(logits), readF32('tiny-gpt2/expected/adapters', p.logits_file))).toBeLessThan(1e-5);
      }
    });
  }

  it('the mixed batch [base, vglm-a, vglm-b, lora-c] gives each row its own golden', async () => {
    const spec = readJson('tiny-gpt2/expected/adapters/mixed_batch.json');
    const rows = spec.rows.map((r: any) => ({
      prompt: r.input_ids,
      adapter: r.adapter ? adapters.get(r.adapter) : undefined,
    }));
    const { tokens, logits } = await greedyBatch(runner, rows, spec.steps);
    spec.rows.forEach((r: any, i: number) => {
      expect(tokens[i]).toEqual(r.expected_new_tokens);
      // The golden file holds every position; the batch's step s is position len(prompt) - 1 + s.
      const golden = readF32('tiny-gpt2/expected/adapters', r.logits_file);
      const V = r.logits_shape[1];
      logits[i].forEach((l, s) => {
        const at = (r.input_ids.length - 1 + s) * V;
        expect(maxAbsDiff(l, golden.subarray(at, at + V))).toBeLessThan(1e-5);
      });
    });
  });

  it('a VLM task token is an id only for its own adapter', async () => {
    const a = adapters.get('vglm-a')!;
    runner.bank.acquire(a);
    try {
      await expect(runner.run([{ row: 0, tokens: [1001], position: 0 }])).rejects.toThrow(/outside the vocabulary/);
      await expect(runner.run([{ row: 0, tokens: [1002], position: 0, adapter: a.id }])).rejects.toThrow(
        /outside the vocabulary/,
      );
    } finally {
      runner.bank.release(a.id);
      runner.cache.clear();
    }
  });

  describe('through the engine thread', () => {
    let engine: EngineClient;
    beforeAll(async () => {
      engine = await EngineClient.start({ model: fixture('tiny-gpt2'), threads: 2 });
      for (const name of ['vglm-a', 'vglm-b', 'lora-c'])
        await engine.addAdapterFolder(name, fixture('tiny-gpt2/adapters', name));
    });
    afterAll(() => engine?.close());

    it('warns that the tokenizer is larger than the model', () => {
      expect(engine.info.warnings.join()).toMatch(/tokenizer knows \d+ tokens but the model has 1000/);
    });

    it('refuses text that encodes outside the model vocabulary, with a clear error', async () => {
      await expect(engine.generate({ prompt: 'Hello world' }).result).rejects.toThrow(RequestError);
      await expect(engine.generate({ prompt: 'Hello world' }).result).rejects.toThrow(
        /outside the vocabulary \(1000\)/,
      );
    });

    it('the mixed batch through continuous batching equals the goldens', async () => {
      const spec = readJson('tiny-gpt2/expected/adapters/mixed_batch.json');
      const gens = engine.generateMany(
        spec.rows.map((r: any) => ({
          promptIds: r.input_ids,
          adapter: r.adapter,
          maxTokens: spec.steps,
          ignoreEos: true,
        })),
      );
      const results = await Promise.all(gens.map((g) => g.result));
      results.forEach((r, i) => expect(r.tokens).toEqual(spec.rows[i].expected_new_tokens));
    });

    it('refuses bad requests with the field at fault', async () => {
      const cases: Array<[object, RegExp, string]> = [
        [{ promptIds: [1, 2000] }, /outside the vocabulary/, 'prompt_ids'],
        [{ promptIds: Array(600).fill(5) }, /context is 512/, 'prompt_ids'],
        [{ promptIds: [1], temperature: -1 }, /temperature/, 'temperature'],
        [{ promptIds: [1], topP: 0 }, /top_p/, 'top_p'],
        [{ promptIds: [1], maxTokens: 0 }, /max_tokens/, 'max_tokens'],
        [{ promptIds: [1], adapter: 'nope' }, /unknown adapter/, 'adapter'],
        [{ prompt: 'x', promptIds: [1] }, /exactly one/, 'prompt'],
      ];
      for (const [req, message, param] of cases) {
        const error = await engine.generate(req).result.catch((e) => e);
        expect(error, JSON.stringify(req)).toBeInstanceOf(RequestError);
        expect(error.message).toMatch(message);
        expect(error.param).toBe(param);
      }
    });
  });
});

function flatten(rows: Float32Array[]): Float32Array {
  const out = new Float32Array(rows.reduce((n, r) => n + r.length, 0));
  let at = 0;
  for (const r of rows) out.set(r, (at += r.length) - r.length);
  return out;
}
