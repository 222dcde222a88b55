import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixture, maxAbsDiff, readF32, readJson } from '../helpers/fixtures.ts';
import { adapterFor, greedyBatch, runnerFor, teacherForce } from '../helpers/engine.ts';
import type { ModelRunner } from '../../src/engine/runtime/runner.ts';
import { EngineClient } from '../../src/engine/worker/client.ts';
import { Llama2cTokenizer } from '../../src/engine/tokenizer/llama2c.ts';

/** llama2.c's stories260K: a real pretrained model, with llama2.c's own expected output. */
describe('stories260k conformance', () => {
  const golden = () => readJson('stories260k/expected/greedy_n200.tokens.json');
  const goldenText = () => readFileSync(fixture('stories260k/expected/greedy_n200.txt'), 'utf8');

  describe.each([
    ['llama2.c checkpoint', 'stories260k/model.bin'],
    ['Hugging Face folder', 'stories260k/hf'],
  ])('%s', (_, path) => {
    let runner: ModelRunner;
    beforeAll(async () => void (runner = await runnerFor(fixture(path))));
    afterAll(() => runner?.release());

    it('reproduces llama2.c greedy 200 tokens', async () => {
      const { tokens } = await greedyBatch(runner, [{ prompt: [1] }], 200);
      expect(tokens[0]).toEqual(golden().tokens);
    });

    it('matches the reference logits at 16 positions within 1e-4', async () => {
      const meta = readJson('stories260k/expected/logits_prefix16.json');
      const expected = readF32('stories260k/expected/logits_prefix16.f32');
      const logits = await teacherForce(runner, meta.input_tokens);
      const flat = new Float32Array(16 * 512);
      logits.forEach((l, t) => flat.set(l, t * 512));
      expect(maxAbsDiff(flat, expected)).toBeLessThan(1e-4);
    });

    it('gives the same last-position logits from one multi-token prefill', async () => {
      const meta = readJson('stories260k/expected/logits_prefix16.json');
      const expected = readF32('stories260k/expected/logits_prefix16.f32');
      const [last] = await runner.run([{ row: 0, tokens: meta.input_tokens, position: 0 }]);
      runner.cache.clear();
      expect(maxAbsDiff(last, expected.subarray(15 * 512, 16 * 512))).toBeLessThan(1e-4);
    });

    for (const variant of ['base', 'vlm-max', 'lora-max'] as const) {
      it(`${variant}: prompt goldens (120 greedy tokens, logits within 1e-4)`, async () => {
        const dir = variant === 'base' ? 'stories260k/expected/prompts' : `stories260k/adapters/${variant}/expected`;
        const spec = readJson(dir, 'greedy.json');
        const adapter = variant === 'base' ? undefined : adapterFor(runner, fixture('stories260k/adapters', variant));
        for (const p of spec.prompts) {
          const { tokens } = await greedyBatch(runner, [{ prompt: p.prompt_ids, adapter }], spec.steps);
          expect(tokens[0], `prompt ${p.prompt_index}`).toEqual(p.greedy_new_tokens);
          const expected = readF32(dir, p.logits_file);
          const V = spec.vocab_size_of_logits;
          const logits = await teacherForce(runner, [...p.prompt_ids, ...p.greedy_new_tokens].slice(0, 8), adapter);
          const flat = new Float32Array(8 * V);
          logits.forEach((l, t) => {
            expect(l.length).toBe(V);
            flat.set(l, t * V);
          });
          expect(maxAbsDiff(flat, expected)).toBeLessThan(1e-4);
        }
      });
    }

    it('decodes base, VLM and LoRA rows of different lengths together, each as if alone', async () => {
      const vlm = adapterFor(runner, fixture('stories260k/adapters/vlm-max'));
      const lora = adapterFor(runner, fixture('stories260k/adapters/lora-max'));
      const rows = [
        { spec: readJson('stories260k/expected/prompts/greedy.json'), adapter: undefined },
        { spec: readJson('stories260k/adapters/vlm-max/expected/greedy.json'), adapter: vlm },
        { spec: readJson('stories260k/adapters/lora-max/expected/greedy.json'), adapter: lora },
      ].flatMap(({ spec, adapter }) =>
        spec.prompts.map((p: any) => ({ prompt: p.prompt_ids, adapter, expected: p.greedy_new_tokens })),
      );
      const { tokens } = await greedyBatch(runner, rows, 120);
      rows.forEach((r, i) => expect(tokens[i], `row ${i}`).toEqual(r.expected));
    });
  });

  it('reads the v1 "ak42" export like the legacy file', async () => {
    const legacy = readFileSync(fixture('stories260k/model.bin'));
    const path = join(mkdtempSync(join(tmpdir(), 'versa-')), 'v1.bin');
    writeFileSync(path, toV1(legacy));
    const runner = await runnerFor(path);
    const { tokens } = await greedyBatch(runner, [{ prompt: [1] }], 200);
    await runner.release();
    expect(tokens[0]).toEqual(golden().tokens);
  });

  it("the CLI streams llama2.c's expected text byte for byte, from the checkpoint and the HF copy", async () => {
    for (const model of ['stories260k/model.bin', 'stories260k/hf']) {
      const engine = await EngineClient.start({ model: fixture(model), threads: 2 });
      const g = engine.generate({ prompt: '', maxTokens: 200 });
      let text = '';
      for await (const e of g) text += e.text;
      const result = await g.result;
      await engine.close();
      expect(text).toBe(goldenText());
      expect(result.text).toBe(goldenText());
      expect(result.tokens).toEqual(golden().tokens);
      expect(result.finishReason).toBe('length');
    }
  });

  it("a one-row engine (a single prompt) serves float weights unpacked, with llama2.c's tokens", async () => {
    // Packing copies every weight at start; one row reads them in place (engine.ts, prepackWeights).
    const start = (o: { maxBatch?: number; quantize?: 'int8' }) =>
      EngineClient.start({ model: fixture('stories260k/model.bin'), threads: 2, ...o });
    const oneRow = await start({ maxBatch: 1 });
    try {
      expect(oneRow.info.prepacked).toBe(false);
      const result = await oneRow.generate({ promptIds: [1], maxTokens: 200 }).result;
      expect(result.tokens).toEqual(golden().tokens);
    } finally {
      await oneRow.close();
    }
    for (const [o, prepacked] of [
      [{}, true], // batches keep packed weights
      [{ maxBatch: 1, quantize: 'int8' }, true], // quantized products need them packed
    ] as const) {
      const engine = await start(o);
      expect(engine.info.prepacked, JSON.stringify(o)).toBe(prepacked);
      await engine.close();
    }
  });

  it('tokenizer.bin encodes and decodes the 484 cases exactly as llama2.c', () => {
    const tok = Llama2cTokenizer.fromFile(fixture('stories260k/tokenizer.bin'));
    const { cases } = readJson('stories260k/expected/tokenizer_cases.json');
    expect(cases.length).toBe(484);
    for (const c of cases) {
      expect(tok.encode(c.text), JSON.stringify(c.text)).toEqual(c.ids);
      expect(tok.decode(c.ids.slice(1)), JSON.stringify(c.text)).toBe(c.decoded);
    }
  });

  it('keeps the text after a NUL (its byte token <0x00>) instead of cutting the prompt there', () => {
    const tok = Llama2cTokenizer.fromFile(fixture('stories260k/tokenizer.bin'));
    const ids = tok.encode('Once\0upon');
    expect(ids).toContain(3); // <0x00> is byte-fallback id 3
    expect(ids.length).toBeGreaterThan(tok.encode('Once').length + 1);
    expect(tok.decode(ids.slice(1))).toBe('Once\0upon');
  });
});

/** Rewrites a legacy llama2.c checkpoint as a v1 export (same weights, 256-byte header, new order). */
function toV1(legacy: Buffer): Buffer {
  const h = new Int32Array(legacy.buffer.slice(legacy.byteOffset, legacy.byteOffset + 28));
  const [dim, hidden, layers, heads, kvHeads, vocabRaw, seqLen] = h;
  const vocab = Math.abs(vocabRaw);
  const kvDim = (kvHeads * dim) / heads;
  const f = new Float32Array(legacy.buffer.slice(legacy.byteOffset + 28, legacy.byteOffset + legacy.byteLength));
  let at = 0;
  const take = (n: number) => f.subarray(at, (at += n));
  const emb = take(vocab * dim),
    attNorm = take(layers * dim),
    wq = take(layers * dim * dim),
    wk = take(layers * kvDim * dim);
  const wv = take(layers * kvDim * dim),
    wo = take(layers * dim * dim),
    ffnNorm = take(layers * dim);
  const w1 = take(layers * hidden * dim),
    w2 = take(layers * hidden * dim),
    w3 = take(layers * hidden * dim),
    norm = take(dim);
  const header = Buffer.alloc(256);
  header.writeUInt32LE(0x616b3432, 0);
  header.writeInt32LE(1, 4);
  [dim, hidden, layers, heads, kvHeads, vocab, seqLen].forEach((v, i) => header.writeInt32LE(v, 8 + 4 * i));
  header.writeUInt8(vocabRaw > 0 ? 1 : 0, 36);
  const body = [attNorm, ffnNorm, norm, emb, wq, wk, wv, wo, w1, w2, w3].map((a) =>
    Buffer.from(a.buffer, a.byteOffset, a.byteLength),
  );
  return Buffer.concat([header, ...body]);
}
