import { readFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import { architectureOf } from '../archs/index.ts';
import { linearModules } from './layout.ts';
import { parameterCount, type ModelConfig } from './config.ts';
import {
  bitsOf,
  checkWeightFormat,
  defaultBlock,
  QuantizationError,
  type FloatType,
  type Quantization,
  type WeightFormat,
} from '../weights/quantize.ts';
import type { WeightDtype } from '../weights/stored.ts';
import type { ExecutionProvider } from '../runtime/providers.ts';

/** What a user may ask for as the serving dtype of float weights. */
export type DtypeChoice = 'auto' | 'float32' | 'float16' | 'bfloat16';
export const DTYPES: readonly DtypeChoice[] = ['auto', 'float32', 'float16', 'bfloat16'];

export interface PrecisionOptions {
  dtype?: DtypeChoice;
  quantize?: Quantization;
  quantizeBlock?: number;
}

/**
 * The weight format a model is served in, checked before any weight is read. `auto` keeps float32
 * on the CPU provider (it computes in float32 fastest), serves float16 on WebGPU whatever the
 * checkpoint's type (half the bytes each step reads; WebGPU has no bfloat16), and the checkpoint's
 * half type on CUDA (float32 for a float32 checkpoint). Linear layers and the head may instead be
 * quantized to int8/int4.
 */
export function weightFormat(
  c: ModelConfig,
  o: PrecisionOptions,
  ep: ExecutionProvider,
  stored: WeightDtype,
): WeightFormat {
  const dtype = o.dtype ?? 'auto';
  if (!DTYPES.includes(dtype)) throw new QuantizationError(`unknown dtype "${dtype}" (use ${DTYPES.join(', ')})`);
  if (dtype === 'bfloat16' && ep !== 'cuda') {
    throw new QuantizationError(
      `--dtype bfloat16 needs --ep cuda: the ${ep} provider has no bfloat16 kernels (use float16 or float32)`,
    );
  }
  const format: WeightFormat = {
    float: floatType(dtype, ep, stored),
    quantize: o.quantize ?? 'none',
    block: quantizeBlockFor(c, o.quantizeBlock),
  };
  checkWeightFormat(format, smallestInput(c));
  return format;
}

/** The quantization block a model is served in: the one asked for, or the default its layers take. */
export function quantizeBlockFor(c: ModelConfig, asked?: number): number {
  return asked ?? defaultBlock(smallestInput(c));
}

const smallestInput = (c: ModelConfig) => Math.min(c.hiddenSize, ...linearModules(c).map((m) => m.in));

function floatType(dtype: DtypeChoice, ep: ExecutionProvider, stored: WeightDtype): FloatType {
  if (dtype !== 'auto') return dtype;
  if (ep === 'webgpu') return 'float16';
  if (ep === 'cpu' || stored === 'F32') return 'float32';
  return stored === 'BF16' ? 'bfloat16' : 'float16';
}

/** Bytes one weight takes in `format` (quantized: its bits, plus its share of a block's scale and zero point). */
function bytesPerWeight(f: WeightFormat): number {
  if (f.quantize === 'none') return f.float === 'float32' ? 4 : 2;
  const bits = bitsOf(f.quantize);
  return bits / 8 + 4 / f.block + bits / 8 / f.block;
}

/** Bytes the base weights take once served in `format` (norms and biases, float32, are too few to count). */
function servedBytes(c: ModelConfig, f: WeightFormat): number {
  return parameterCount(c) * bytesPerWeight(f);
}

/**
 * Bytes of weights read to decode one token at batch 1: every block matrix and the output head
 * (the embeddings give one row; GPT-2's position table too). The memory-bandwidth roofline.
 */
export function bytesReadPerToken(c: ModelConfig, f: WeightFormat): number {
  const d = c.hiddenSize;
  const matrices = linearModules(c).reduce((n, m) => n + m.in * m.out, 0) * c.numLayers + c.vocabSize * d;
  const vectors =
    parameterCount(c) -
    matrices -
    (c.tiedEmbeddings ? 0 : c.vocabSize * d) -
    (architectureOf(c).positionEmbeddings ? c.maxPositions * d : 0);
  return matrices * bytesPerWeight(f) + vectors * 4;
}

/**
 * Refuses a model that cannot fit, before minutes of reading: loading holds the served weights
 * twice at its peak (our buffers, and onnxruntime's copy of them).
 */
export function checkMemory(c: ModelConfig, f: WeightFormat, available = memoryLimit()): void {
  const need = 2 * servedBytes(c, f);
  if (need > available) {
    const gb = (n: number) => `${(n / 1e9).toFixed(1)} GB`;
    const hint = f.quantize === 'int4' ? '' : ' (try --quantize int4)';
    throw new QuantizationError(
      `the model needs about ${gb(need)} of memory to load as ${f.quantize === 'none' ? f.float : f.quantize} ` +
        `but this machine has ${gb(available)}${hint}`,
    );
  }
}

/** The machine's memory, or the container's limit when one is set (cgroup v2). */
function memoryLimit(): number {
  try {
    const max = readFileSync('/sys/fs/cgroup/memory.max', 'utf8').trim();
    if (/^\d+$/.test(max)) return Math.min(Number(max), totalmem());
  } catch {
    // no cgroup v2 limit here
  }
  return totalmem();
}
