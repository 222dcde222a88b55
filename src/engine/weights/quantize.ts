/**
 * Weight-only quantization at load: round-to-nearest with a float scale and an integer zero point
 * per block of `block` consecutive inputs of each output row (asymmetric, the range always holds
 * 0). The layout is onnxruntime's MatMulNBits (and GatherBlockQuantized) layout, so the bytes go to
 * the session as they are. Hand-written: no maintained JS quantizer exists, and it is short.
 */
export type Quantization = 'none' | 'int8' | 'int4';
export const QUANTIZATIONS: readonly Quantization[] = ['none', 'int8', 'int4'];
/**
 * 64 inputs a block: 4.56 bits a weight at int4 and 8.63 at int8 (float32 scale, 4/8-bit zero
 * point), llama.cpp's Q4_0 and Q8_0 take 4.5 and 8.5 (32 inputs, symmetric, float16 scale), with
 * the same error: signal to quantization noise 20.8 / 45.4 dB on Gaussian weights, against Q4_0's
 * 21.3 and Q8_0's 45.4 (18.5 / 43.1 against 18.7 / 42.7 on heavier-tailed Student-t(4) weights).
 * A batch-1 int4 decode step of the 110M Llama takes about 23 % less time in blocks of 64 than in
 * blocks of 32, which spend 14 % more bits for 0.5-1.6 dB less noise (`--quantize-block 32`).
 */
export const DEFAULT_BLOCK = 64;

/** The element type of float weights in the graph (activations, the KV cache and adapters stay float32). */
export type FloatType = 'float32' | 'float16' | 'bfloat16';

export interface WeightFormat {
  /** Float weights' type; a matrix in float16/bfloat16 is multiplied in that type. */
  float: FloatType;
  /** Weight-only quantization of the projections and the head (it takes precedence over `float`). */
  quantize: Quantization;
  /** Inputs per quantization block (a power of two, 16..256). */
  block: number;
}
export const FLOAT32: WeightFormat = { float: 'float32', quantize: 'none', block: DEFAULT_BLOCK };

export class QuantizationError extends Error {
  override name = 'QuantizationError';
}

/** What MatMulNBits takes as a block size. */
export const BLOCK_SIZES = 'a power of two from 16 to 256';
export const isBlockSize = (b: number) => Number.isInteger(b) && b >= 16 && b <= 256 && (b & (b - 1)) === 0;

/**
 * The block a model is quantized in unless one is asked for: DEFAULT_BLOCK, or the largest block
 * (at least 16) that a model with narrower layers can take.
 */
export function defaultBlock(smallestInput: number): number {
  let b = DEFAULT_BLOCK;
  while (b > 16 && b > smallestInput) b /= 2;
  return b;
}

/** Checks a format against a model's smallest input width before any work is done. */
export function checkWeightFormat(f: WeightFormat, smallestInput: number): void {
  if (!QUANTIZATIONS.includes(f.quantize)) {
    throw new QuantizationError(`unknown quantization "${f.quantize}" (use ${QUANTIZATIONS.join(', ')})`);
  }
  if (f.quantize === 'none') return;
  const b = f.block;
  if (!isBlockSize(b))
    throw new QuantizationError(`quantization block size ${b} must be ${BLOCK_SIZES} (default ${DEFAULT_BLOCK})`);
  if (b > smallestInput) {
    throw new QuantizationError(
      `quantization block size ${b} is larger than the model's smallest layer input (${smallestInput})`,
    );
  }
}

export const bitsOf = (q: Exclude<Quantization, 'none'>): 4 | 8 => (q === 'int4' ? 4 : 8);

/** The shape of a quantized matrix: known before (or without) quantizing it. */
export interface QuantizedShape {
  rows: number;
  cols: number;
  bits: 4 | 8;
  block: number;
  /** Blocks per row: ceil(cols / block); the last is padded with the zero point (value 0). */
  blocks: number;
  /** Bytes of zero points per row: ceil(blocks * bits / 8). */
  zeroPointBytes: number;
}

export function quantizedShape(rows: number, cols: number, bits: 4 | 8, block: number): QuantizedShape {
  const blocks = Math.ceil(cols / block);
  return { rows, cols, bits, block, blocks, zeroPointBytes: Math.ceil((blocks * bits) / 8) };
}

/** A [rows, cols] matrix quantized along cols (rows = outputs N, cols = inputs K). */
export interface QuantizedMatrix extends QuantizedShape {
  /** [rows, blocks, block * bits / 8] */
  packed: Uint8Array;
  /** [rows, blocks] */
  scales: Float32Array;
  /** [rows, ceil(blocks * bits / 8)]: two 4-bit zero points a byte, low nibble first. */
  zeroPoints: Uint8Array;
}

export function quantizeRows(w: Float32Array, rows: number, cols: number, bits: 4 | 8, block: number): QuantizedMatrix {
  const shape = quantizedShape(rows, cols, bits, block);
  const { blocks, zeroPointBytes: zpRow } = shape;
  const blob = (block * bits) / 8;
  const qmax = (1 << bits) - 1;
  const packed = new Uint8Array(rows * blocks * blob);
  const scales = new Float32Array(rows * blocks);
  const zeroPoints = new Uint8Array(rows * zpRow);
  for (let r = 0; r < rows; r++) {
    const row = r * cols;
    for (let b = 0; b < blocks; b++) {
      const k0 = row + b * block;
      const k1 = row + Math.min(cols, (b + 1) * block);
      let lo = 0;
      let hi = 0;
      for (let k = k0; k < k1; k++) {
        const v = w[k];
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
      }
      const scale = hi > lo ? (hi - lo) / qmax : 1;
      const inv = 1 / scale;
      const zp = Math.min(qmax, Math.max(0, Math.round(-lo / scale)));
      scales[r * blocks + b] = scale;
      // round(v / scale) + zp, clamped: floor(v * inv + zp + 0.5), as zp is an integer.
      const offset = zp + 0.5;
      const at = (r * blocks + b) * blob;
      if (bits === 8) {
        zeroPoints[r * zpRow + b] = zp;
        for (let k = k0; k < k0 + block; k++) {
          const t = k < k1 ? w[k] * inv + offset : offset;
          packed[at + k - k0] = t <= 0 ? 0 : t >= 256 ? 255 : t;
        }
      } else {
        zeroPoints[r * zpRow + (b >> 1)] |= zp << ((b & 1) * 4);
        for (let k = k0; k < k0 + block; k += 2) {
          const t0 = k < k1 ? w[k] * inv + offset : offset;
          const t1 = k + 1 < k1 ? w[k + 1] * inv + offset : offset;
          const q0 = t0 <= 0 ? 0 : t0 >= 16 ? 15 : t0 | 0;
          const q1 = t1 <= 0 ? 0 : t1 >= 16 ? 15 : t1 | 0;
          packed[at + ((k - k0) >> 1)] = q0 | (q1 << 4);
        }
      }
    }
  }
  return { ...shape, packed, scales, zeroPoints };
}

/** The float values a quantized matrix stands for, [rows, cols] (tests and error checks). */
export function dequantize(m: QuantizedMatrix): Float32Array {
  const { rows, cols, bits, block, blocks } = m;
  const blob = (block * bits) / 8;
  const zpRow = Math.ceil((blocks * bits) / 8);
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let k = 0; k < cols; k++) {
      const b = Math.floor(k / block);
      const i = k - b * block;
      const byte = m.packed[(r * blocks + b) * blob + (bits === 8 ? i : i >> 1)];
      const v = bits === 8 ? byte : (byte >> ((i & 1) * 4)) & 15;
      const zpByte = m.zeroPoints[r * zpRow + (bits === 8 ? b : b >> 1)];
      const zp = bits === 8 ? zpByte : (zpByte >> ((b & 1) * 4)) & 15;
      out[r * cols + k] = (v - zp) * m.scales[r * blocks + b];
    }
  }
  return out;
}
