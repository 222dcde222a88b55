import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fixture, maxAbsDiff, readJson } from '../helpers/fixtures.ts';
import { adapterFor, greedyBatch, runnerFor, teacherForce } from '../helpers/engine.ts';
import { describeLora } from '../../src/engine/adapters/format.ts';
import { inspectModel } from '../../src/engine/loaders/load.ts';
import { writeLoraAdapter } from '../../src/engine/synthetic.ts';
import { encodeSafetensors, parseHeader } from '../../src/engine/weights/safetensors.ts';

describe('adapters', () => {
  const loraOnBothLayouts =
    'a PEFT LoRA on every Llama projection gives the same logits on the HF folder and the llama2.c checkpoint';
  it(loraOnBothLayouts, async () => {
    // PEFT deltas are in Hugging Face's rotate-half layout; on llama2.c's interleaved layout the
    // q/k rows must be permuted back. Equal logits on both bases prove it for q_proj AND k_proj.
    const config = inspectModel(fixture('stories260k/hf')).config;
    const dir = mkdtempSync(join(tmpdir(), 'versa-lora-'));
    writeLoraAdapter(
      dir,
      config,
      3,
      [
        'self_attn.q_proj',
        'self_attn.k_proj',
        'self_attn.v_proj',
        'self_attn.o_proj',
        'mlp.gate_proj',
        'mlp.up_proj',
        'mlp.down_proj',
      ],
      5,
      12,
    );
    const tokens = [1, ...readJson('stories260k/expected/greedy_n200.tokens.json').tokens.slice(0, 11)];
    const logits: Float32Array[][] = [];
    for (const model of ['stories260k/hf', 'stories260k/model.bin']) {
      const runner = await runnerFor(fixture(model));
      logits.push(await teacherForce(runner, tokens, adapterFor(runner, dir)));
      await runner.release();
    }
    const base = await runnerFor(fixture('stories260k/hf'));
    const plain = await teacherForce(base, tokens);
    await base.release();
    logits[0].forEach((l, t) => {
      expect(maxAbsDiff(l, logits[1][t])).toBeLessThan(1e-4);
      expect(maxAbsDiff(l, plain[t])).toBeGreaterThan(1e-2); // the adapter does change the model
    });
  });

  it('scales LoRA by alpha/r, or alpha/sqrt(r) with use_rslora, and honours alpha_pattern', () => {
    const config = inspectModel(fixture('stories260k/hf')).config;
    const header = parseHeader(
      readFileSync(fixture('stories260k/adapters/lora-max/adapter_model.safetensors')),
      readFileSync(fixture('stories260k/adapters/lora-max/adapter_model.safetensors')).length,
    );
    const peft = readJson('stories260k/adapters/lora-max/adapter_config.json');
    const scales = (extra: object) =>
      describeLora(header, config, { ...peft, ...extra }).modules.map((m) => [m.module, m.scale]);
    expect(new Set(scales({}).map(([, s]) => s))).toEqual(new Set([2]));
    expect(new Set(scales({ use_rslora: true }).map(([, s]) => s))).toEqual(new Set([8 / 2]));
    const patterned = scales({ alpha_pattern: { down_proj: 16 } });
    for (const [module, scale] of patterned) expect(scale).toBe(module === 'mlp.down_proj' ? 4 : 2);
  });

  it('an untied Llama head (lm_head.weight) gives the same output as the tied one it copies', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'versa-untied-'));
    const src = fixture('stories260k/hf');
    const config = JSON.parse(readFileSync(join(src, 'config.json'), 'utf8'));
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...config, tie_word_embeddings: false }));
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(src, f), join(dir, f));
    const bytes = readFileSync(join(src, 'model.safetensors'));
    const h = parseHeader(bytes, bytes.length);
    const tensors = [...h.tensors.values()].map((t) => ({
      name: t.name,
      shape: t.shape,
      data: new Float32Array(
        bytes.buffer.slice(bytes.byteOffset + h.dataOffset + t.begin, bytes.byteOffset + h.dataOffset + t.end),
      ),
    }));
    const embed = tensors.find((t) => t.name === 'model.embed_tokens.weight')!;
    writeFileSync(
      join(dir, 'model.safetensors'),
      encodeSafetensors([...tensors, { name: 'lm_head.weight', shape: embed.shape, data: embed.data.slice() }]),
    );
    const runner = await runnerFor(dir);
    const { tokens } = await greedyBatch(runner, [{ prompt: [1] }], 100);
    await runner.release();
    expect(tokens[0]).toEqual(readJson('stories260k/expected/greedy_n200.tokens.json').tokens.slice(0, 100));
  });
});
