import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { readExact } from '../weights/files.ts';
import { ModelFormatError, type ModelConfig } from '../model/config.ts';
import { layerPrefix } from '../model/layout.ts';
import type { StoredTensor, WeightSource } from '../weights/stored.ts';
import type { OpenedModel } from './load.ts';

const MAGIC_AK42 = 0x616b3432;

/**
 * Opens a llama2.c checkpoint: the legacy format (7 x int32 header, read by run.c) or the v1
 * "ak42" export (256-byte header). Each tensor is one read when the graph asks for it. Weights keep
 * llama2.c's interleaved RoPE layout, under Hugging Face names so that the Llama builder serves both.
 */
export function openLlama2c(path: string): Omit<OpenedModel, 'format'> {
  const config = readLlama2cConfig(path);
  const fd = openSync(path, 'r');
  try {
    return { config, ...storedWeights(path, fd, config), files: [path], close: () => closeSync(fd) };
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}

/** Where each tensor lies in the file (checked against its size); bytes are read on demand. */
function storedWeights(path: string, fd: number, config: ModelConfig) {
  const size = fstatSync(fd).size;
  const head = new Uint8Array(256);
  const { v1, headDim, kvDim } = parseHeader(new DataView(head.buffer, 0, readSync(fd, head, 0, 256, 0)), path);
  const {
    hiddenSize: dim,
    intermediateSize: hidden,
    numLayers: layers,
    vocabSize: vocab,
    maxPositions: seqLen,
  } = config;
  const shared = config.tiedEmbeddings;

  let offset = v1 ? 256 : 28;
  const floats = (count: number) => {
    const at = offset;
    offset += count * 4;
    if (offset > size) throw new ModelFormatError(`${path}: truncated (needs more than ${size} bytes)`);
    return at;
  };
  const weights = new Map<string, StoredTensor>();
  const tensor = (dims: number[]): StoredTensor => {
    const length = dims.reduce((a, b) => a * b, 1) * 4;
    const at = floats(length / 4);
    return { dims, dtype: 'F32', bytes: () => readExact(fd, at, length, path) };
  };
  const perLayer = (name: string, dims: number[]) => {
    for (let i = 0; i < layers; i++) weights.set(`${layerPrefix(config, i)}${name}`, tensor(dims));
  };
  const embed = () => weights.set('model.embed_tokens.weight', tensor([vocab, dim]));
  const norm = () => weights.set('model.norm.weight', tensor([dim]));
  const projections = () => {
    perLayer('self_attn.q_proj.weight', [dim, dim]);
    perLayer('self_attn.k_proj.weight', [kvDim, dim]);
    perLayer('self_attn.v_proj.weight', [kvDim, dim]);
    perLayer('self_attn.o_proj.weight', [dim, dim]);
  };
  if (v1) {
    perLayer('input_layernorm.weight', [dim]);
    perLayer('post_attention_layernorm.weight', [dim]);
    norm();
    embed();
    projections();
    perLayer('mlp.gate_proj.weight', [hidden, dim]);
    perLayer('mlp.down_proj.weight', [dim, hidden]);
    perLayer('mlp.up_proj.weight', [hidden, dim]);
  } else {
    embed();
    perLayer('input_layernorm.weight', [dim]);
    projections();
    perLayer('post_attention_layernorm.weight', [dim]);
    perLayer('mlp.gate_proj.weight', [hidden, dim]);
    perLayer('mlp.down_proj.weight', [dim, hidden]);
    perLayer('mlp.up_proj.weight', [hidden, dim]);
    norm();
    floats(seqLen * headDim); // the legacy file's precomputed RoPE tables (cos and sin), unused
  }
  if (!shared) weights.set('lm_head.weight', tensor([vocab, dim]));
  if (offset !== size) {
    throw new ModelFormatError(`${path}: ${size - offset} unexpected trailing bytes (header and file size disagree)`);
  }
  return { weights: weights as WeightSource, fileBytes: size };
}

/** Reads the config from a llama2.c checkpoint's header (the first 256 bytes at most). */
export function readLlama2cConfig(path: string): ModelConfig {
  const fd = openSync(path, 'r');
  try {
    const head = new Uint8Array(256);
    const n = readSync(fd, head, 0, 256, 0);
    return parseHeader(new DataView(head.buffer, 0, n), path).config;
  } finally {
    closeSync(fd);
  }
}

function parseHeader(head: DataView, path: string) {
  if (head.byteLength < 28) throw new ModelFormatError(`${path}: too small to be a llama2.c checkpoint`);
  const v1 = head.getUint32(0, true) === MAGIC_AK42;
  if (v1 && head.getInt32(4, true) !== 1) {
    throw new ModelFormatError(
      `${path}: llama2.c export version ${head.getInt32(4, true)} is not supported (only legacy and v1 float32)`,
    );
  }
  if (v1 && head.byteLength < 37) throw new ModelFormatError(`${path}: truncated v1 header`);
  const at = v1 ? 8 : 0;
  const [dim, hidden, layers, heads, kvHeads, vocabRaw, seqLen] = Array.from({ length: 7 }, (_, i) =>
    head.getInt32(at + 4 * i, true),
  );
  const shared = v1 ? head.getUint8(36) === 1 : vocabRaw > 0;
  const vocab = Math.abs(vocabRaw);
  for (const [k, v] of Object.entries({ dim, hidden, layers, heads, kvHeads, vocab, seqLen })) {
    if (!(v > 0 && v < 1 << 24))
      throw new ModelFormatError(`${path}: implausible header field ${k} = ${v} (not a llama2.c checkpoint?)`);
  }
  if (dim % heads || heads % kvHeads || (dim / heads) % 2) {
    throw new ModelFormatError(`${path}: dim ${dim}, ${heads} heads, ${kvHeads} kv heads do not fit together`);
  }
  const headDim = dim / heads;
  const config: ModelConfig = {
    architecture: 'llama',
    vocabSize: vocab,
    hiddenSize: dim,
    numLayers: layers,
    numHeads: heads,
    numKvHeads: kvHeads,
    headDim,
    intermediateSize: hidden,
    maxPositions: seqLen,
    normEps: 1e-5,
    tiedEmbeddings: shared,
    ropeTheta: 10000,
    ropeLayout: 'interleaved',
    bosTokenId: 1,
    eosTokenId: 2,
  };
  return { config, v1, headDim, kvDim: kvHeads * headDim };
}
