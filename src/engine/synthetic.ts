import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ModelConfig } from './model/config.ts';
import { layerPrefix, linearModules, weightShapes } from './model/layout.ts';
import { architectureOf } from './archs/index.ts';
import { encodeSafetensors } from './weights/safetensors.ts';
import type { Weights } from './weights/tensor.ts';

/** GPT-2 small's shape (124M parameters), for benchmarks with seeded random weights. */
export const GPT2_SMALL: ModelConfig = {
  architecture: 'gpt2',
  vocabSize: 50257,
  hiddenSize: 768,
  numLayers: 12,
  numHeads: 12,
  numKvHeads: 12,
  headDim: 64,
  intermediateSize: 3072,
  maxPositions: 1024,
  normEps: 1e-5,
  tiedEmbeddings: true,
  bosTokenId: 50256,
  eosTokenId: 50256,
};

/** A seeded generator of N(0, std^2) floats (Box-Muller over a 32-bit LCG: fast, reproducible). */
function gaussian(seed: number, std: number): () => number {
  let s = seed >>> 0;
  const uniform = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) + 0.5) / 2 ** 32;
  return () => std * Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
}

/** Random weights for `c` (LayerNorm weights 1, biases 0), like a freshly initialised model. */
export function randomWeights(c: ModelConfig, seed = 1): Weights {
  const next = gaussian(seed, 0.02);
  const weights: Weights = new Map();
  for (const [name, dims] of weightShapes(c)) {
    const data = new Float32Array(dims.reduce((a, b) => a * b, 1));
    if (/ln_\d\.weight|ln_f\.weight|layernorm\.weight|norm\.weight/.test(name)) data.fill(1);
    else if (!name.endsWith('.bias')) for (let i = 0; i < data.length; i++) data[i] = next();
    weights.set(name, { dims, data });
  }
  return weights;
}

/** Writes a Hugging Face GPT-2 folder (config.json + model.safetensors) for `c` and `weights`. */
export function writeGpt2Folder(dir: string, c: ModelConfig, weights: Weights): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, 'config.json'),
    JSON.stringify({
      architectures: ['GPT2LMHeadModel'],
      model_type: 'gpt2',
      vocab_size: c.vocabSize,
      n_positions: c.maxPositions,
      n_embd: c.hiddenSize,
      n_layer: c.numLayers,
      n_head: c.numHeads,
      activation_function: 'gelu_new',
      layer_norm_epsilon: c.normEps,
      bos_token_id: c.bosTokenId,
      eos_token_id: c.eosTokenId,
    }),
  );
  const tensors = [...weights].map(([name, t]) => ({ name, shape: t.dims, data: t.data }));
  writeFileSync(join(dir, 'model.safetensors'), encodeSafetensors(tensors));
}

/** A random VLM adapter folder for `c` (bottleneck m, K task tokens), about 8*L*d*m bytes. */
export function writeVlmAdapter(dir: string, c: ModelConfig, m: number, seed: number, taskTokens: string[] = []): void {
  const next = gaussian(seed, 0.02);
  const d = c.hiddenSize;
  const tensors: Array<{ name: string; shape: number[]; data: Float32Array }> = [];
  const rand = (n: number) => Float32Array.from({ length: n }, next);
  for (let l = 0; l < c.numLayers; l++) {
    const p = `${layerPrefix(c, l)}adapter_block.`;
    tensors.push(
      { name: `${p}ln.weight`, shape: [d], data: new Float32Array(d).fill(1) },
      { name: `${p}ln.bias`, shape: [d], data: new Float32Array(d) },
      { name: `${p}project_down.weight`, shape: [m, d], data: rand(m * d) },
      { name: `${p}project_down.bias`, shape: [m], data: rand(m) },
      { name: `${p}project_up.weight`, shape: [d, m], data: rand(d * m) },
      { name: `${p}project_up.bias`, shape: [d], data: rand(d) },
    );
  }
  if (taskTokens.length)
    tensors.push({ name: 'task_embeddings', shape: [taskTokens.length, d], data: rand(taskTokens.length * d) });
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, 'adapter.safetensors'),
    encodeSafetensors(tensors, {
      format: 'vglm',
      bottleneck: String(m),
      task_tokens: JSON.stringify(taskTokens),
      base_model: 'gpt2-small-random',
    }),
  );
}

/** A random PEFT LoRA adapter folder for `c` on `modules` (e.g. ["attn.c_attn"]). */
export function writeLoraAdapter(
  dir: string,
  c: ModelConfig,
  rank: number,
  modules: string[],
  seed: number,
  alpha = 2 * rank,
): void {
  const next = gaussian(seed, 0.05);
  const rand = (n: number) => Float32Array.from({ length: n }, next);
  const specs = linearModules(c).filter((m) => modules.includes(m.name));
  const tensors: Array<{ name: string; shape: number[]; data: Float32Array }> = [];
  for (let l = 0; l < c.numLayers; l++) {
    for (const m of specs) {
      const p = `base_model.model.${layerPrefix(c, l)}${m.name}`;
      tensors.push({ name: `${p}.lora_A.weight`, shape: [rank, m.in], data: rand(rank * m.in) });
      tensors.push({ name: `${p}.lora_B.weight`, shape: [m.out, rank], data: rand(m.out * rank) });
    }
  }
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'adapter_model.safetensors'), encodeSafetensors(tensors));
  writeFileSync(
    join(dir, 'adapter_config.json'),
    JSON.stringify(
      {
        peft_type: 'LORA',
        task_type: 'CAUSAL_LM',
        r: rank,
        lora_alpha: alpha,
        lora_dropout: 0,
        target_modules: [...new Set(specs.map((m) => m.name.split('.').pop()))],
        fan_in_fan_out: architectureOf(c).matrixLayout === 'in_out',
        bias: 'none',
      },
      null,
      1,
    ),
  );
}

/**
 * A llama2.c tokenizer.bin over bytes: the three specials, the 256 byte-fallback pieces, then
 * printable ASCII as itself (so text round-trips and a random model prints readable noise).
 */
export function writeByteTokenizer(path: string): number {
  const pieces: Array<[string, number]> = [
    ['<unk>', 0],
    ['\n<s>\n', 0],
    ['\n</s>\n', 0],
  ];
  for (let b = 0; b < 256; b++) pieces.push([`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`, 0]);
  for (let ch = 32; ch < 127; ch++) pieces.push([String.fromCharCode(ch), 0]);
  const chunks: Buffer[] = [Buffer.from(Int32Array.of(16).buffer)];
  for (const [text, score] of pieces) {
    const bytes = Buffer.from(text, 'latin1');
    const head = Buffer.alloc(8);
    head.writeFloatLE(score, 0);
    head.writeInt32LE(bytes.length, 4);
    chunks.push(head, bytes);
  }
  writeFileSync(path, Buffer.concat(chunks));
  return pieces.length;
}
