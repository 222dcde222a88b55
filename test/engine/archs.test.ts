import { mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixture, maxAbsDiff, readF32, readJson } from '../helpers/fixtures.ts';
import { adapterFor, greedyBatch, runnerFor, teacherForce } from '../helpers/engine.ts';
import { vlmAdapter } from '../helpers/adapters.ts';
import { readAdapter } from '../../src/engine/adapters/read.ts';
import type { ModelRunner } from '../../src/engine/runtime/runner.ts';
import { FLOAT32 } from '../../src/engine/weights/quantize.ts';

/**
 * Conformance of the Llama-family architectures against test/fixtures/archs (tiny random-weight
 * Hugging Face folders with PyTorch goldens that follow the transformers modeling code; see its README).
 */
const ARCHS = ['llama3', 'qwen2', 'qwen3', 'mistral', 'phi3', 'gemma', 'gemma2'];

const logitsGolden = (arch: string, file: string) => readF32('archs', arch, 'expected', file);

describe.each(ARCHS)('%s conformance', (arch) => {
  const dir = fixture('archs', arch);
  let runner: ModelRunner;
  let golden: any;
  beforeAll(async () => {
    golden = readJson('archs', arch, 'expected/greedy.json');
    runner = await runnerFor(dir);
  });
  afterAll(() => runner?.release());

  it('base and LoRA logits of prompt 0 within 1e-4, one prefill of both rows', async () => {
    const lora = adapterFor(runner, join(dir, 'adapters/lora'));
    runner.bank.acquire(lora);
    try {
      const variants = [golden.variants.base, golden.variants.lora];
      const out = await runner.run(
        variants.map((v, i) => ({
          row: i,
          tokens: v.logits.input_ids,
          position: 0,
          adapter: v.adapter_dir ? lora.id : undefined,
          everyPosition: true,
        })),
      );
      variants.forEach((v, i) =>
        expect(maxAbsDiff(out[i], logitsGolden(arch, v.logits.file)), v.logits.file).toBeLessThan(1e-4),
      );
    } finally {
      runner.bank.release(lora.id);
      runner.cache.clear();
    }
  });

  it('LoRA logits within 1e-4 one token at a time (the decode path)', async () => {
    const v = golden.variants.lora;
    const steps = await teacherForce(runner, v.logits.input_ids, adapterFor(runner, join(dir, 'adapters/lora')));
    const V = runner.config.vocabSize;
    const flat = new Float32Array(steps.length * V);
    steps.forEach((l, t) => flat.set(l, t * V));
    expect(maxAbsDiff(flat, logitsGolden(arch, v.logits.file))).toBeLessThan(1e-4);
  });

  it('greedy tokens exact: base and LoRA prompts and a VLM row, in one mixed batch', async () => {
    const lora = adapterFor(runner, join(dir, 'adapters/lora'));
    const files = vlmAdapter(runner.config, { taskTokens: ['<|task|>'] });
    const vlm = readAdapter('vlm', { files: new Map(files.map((f) => [f.name, f.bytes])) }, runner.config);
    const steps = golden.steps;
    // The row starts with its task token (id V, right after the base vocabulary).
    const vlmPrompt = [runner.config.vocabSize, ...golden.variants.base.prompts[0].prompt_ids.slice(1)];
    const alone = (await greedyBatch(runner, [{ prompt: vlmPrompt, adapter: vlm }], steps)).tokens[0];
    expect(alone, 'the VLM adapter changes the output').not.toEqual(golden.variants.base.prompts[0].greedy_new_tokens);

    const rows = [
      ...golden.variants.base.prompts.map((p: any) => ({ prompt: p.prompt_ids, expected: p.greedy_new_tokens })),
      { prompt: vlmPrompt, adapter: vlm, expected: alone },
      ...golden.variants.lora.prompts.map((p: any) => ({
        prompt: p.prompt_ids,
        adapter: lora,
        expected: p.greedy_new_tokens,
      })),
    ];
    const { tokens } = await greedyBatch(runner, rows, steps);
    rows.forEach((r, i) => expect(tokens[i], `row ${i}`).toEqual(r.expected));
  });
});

describe.each(ARCHS)('%s quantized', (arch) => {
  const dir = fixture('archs', arch);
  for (const quantize of ['int8', 'int4'] as const) {
    it(`${quantize}: near the float32 logits; LoRA and base rows together exactly as alone`, async () => {
      const golden = readJson('archs', arch, 'expected/greedy.json');
      const runner = await runnerFor(dir, { ...FLOAT32, quantize, block: 16 });
      try {
        const ids = golden.variants.base.logits.input_ids;
        const [logits] = await runner.run([{ row: 0, tokens: ids, position: 0, everyPosition: true }]);
        runner.cache.clear();
        const diff = maxAbsDiff(logits, logitsGolden(arch, golden.variants.base.logits.file));
        // Random tiny weights round coarsely (block 16): a bound on the damage, not a precision claim.
        expect(diff).toBeLessThan(quantize === 'int8' ? 1 : 8);
        const lora = adapterFor(runner, join(dir, 'adapters/lora'));
        const rows = golden.variants.base.prompts.slice(0, 3).map((p: any, i: number) => ({
          prompt: p.prompt_ids,
          adapter: i === 1 ? lora : undefined,
        }));
        const together = await greedyBatch(runner, rows, 8);
        for (let i = 0; i < rows.length; i++)
          expect(together.tokens[i]).toEqual((await greedyBatch(runner, [rows[i]], 8)).tokens[0]);
      } finally {
        await runner.release();
      }
    });
  }
});

describe('sliding-window attention', () => {
  /** The Mistral fixture cut to one layer, with the given sliding_window, in a temporary folder. */
  function mistral(window: number | null): string {
    const dir = mkdtempSync(join(tmpdir(), 'versa-sw-'));
    const config = readJson('archs', 'mistral/config.json');
    writeFileSync(
      join(dir, 'config.json'),
      JSON.stringify({ ...config, num_hidden_layers: 1, sliding_window: window }),
    );
    symlinkSync(fixture('archs', 'mistral/model.safetensors'), join(dir, 'model.safetensors'));
    return dir;
  }

  it('a query attends to exactly the last `window` positions, itself included, in prefill and decode', async () => {
    const ids = [1, 403, 407, 261, 378, 432, 383, 286, 261, 300, 17, 90];
    const windowed = await runnerFor(mistral(4));
    const full = await runnerFor(mistral(null));
    try {
      expect(windowed.config.slidingWindow).toEqual({ size: 4, layers: [0] });
      const [prefill] = await windowed.run([{ row: 0, tokens: ids, position: 0, everyPosition: true }]);
      windowed.cache.clear();
      const stepwise = await teacherForce(windowed, ids);
      const [unmasked] = await full.run([{ row: 0, tokens: ids, position: 0, everyPosition: true }]);
      full.cache.clear();
      const V = windowed.config.vocabSize;
      for (let t = 0; t < ids.length; t++) {
        // One layer, relative positions: the last 4 tokens alone (from position 0) give the same logits.
        const recent = ids.slice(Math.max(0, t - 3), t + 1);
        const [alone] = await full.run([{ row: 0, tokens: recent, position: 0 }]);
        full.cache.clear();
        const row = prefill.subarray(t * V, (t + 1) * V);
        expect(maxAbsDiff(row, alone), `position ${t}`).toBeLessThan(1e-4);
        expect(maxAbsDiff(stepwise[t], alone), `position ${t}, decoding`).toBeLessThan(1e-4);
        const differs = maxAbsDiff(row, unmasked.subarray(t * V, (t + 1) * V)) > 1e-3;
        expect(differs, `position ${t}`).toBe(t >= 4);
      }
      // Rows at different positions in one batch each keep their own window.
      const rows = [{ prompt: ids }, { prompt: ids.slice(0, 3) }, { prompt: ids.slice(2, 9) }];
      const together = await greedyBatch(windowed, rows, 12);
      for (let i = 0; i < rows.length; i++)
        expect(together.tokens[i], `row ${i}`).toEqual((await greedyBatch(windowed, [rows[i]], 12)).tokens[0]);
    } finally {
      await Promise.all([windowed.release(), full.release()]);
    }
  });
});
