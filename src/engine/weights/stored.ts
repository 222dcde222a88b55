import { toFloat32, toFloat32Into, type Dtype } from './safetensors.ts';
import type { FloatType } from './quantize.ts';

/** The dtypes a base model's weights may be stored in. */
export type WeightDtype = Extract<Dtype, 'F32' | 'F16' | 'BF16'>;

/**
 * A base-model tensor as its checkpoint stores it. Bytes are read only when the graph builder asks
 * for them, one tensor at a time, so converting or quantizing a model never holds more than the
 * serving copy plus one tensor in flight.
 */
export interface StoredTensor {
  readonly dims: readonly number[];
  readonly dtype: WeightDtype;
  /** Little-endian bytes: a view of a file already in memory, or a fresh read of this tensor. */
  bytes(): Uint8Array;
}

/** A model's weights by Hugging Face state-dict name. */
export type WeightSource = ReadonlyMap<string, StoredTensor>;

/** A tensor's values as float32: a view of the stored bytes when they already are (and aligned). */
export function float32Of(t: StoredTensor): Float32Array {
  const bytes = t.bytes();
  if (t.dtype === 'F32' && bytes.byteOffset % 4 === 0)
    return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  return toFloat32(bytes, t.dtype);
}

/** A tensor's values as float32, written into `out` from index `at` (a view of them there). */
export function float32Into(t: StoredTensor, out: Float32Array, at: number): Float32Array {
  return toFloat32Into(t.bytes(), t.dtype, out, at);
}

/** The dtype that holds most of a model's bytes: its checkpoint's precision. */
export function storedDtype(source: WeightSource): WeightDtype {
  const bytes = new Map<WeightDtype, number>();
  for (const t of source.values()) bytes.set(t.dtype, (bytes.get(t.dtype) ?? 0) + t.dims.reduce((a, b) => a * b, 1));
  return [...bytes].sort((a, b) => b[1] - a[1])[0]?.[0] ?? 'F32';
}

const STORED: Record<FloatType, WeightDtype> = { float32: 'F32', float16: 'F16', bfloat16: 'BF16' };

/** A tensor's bytes in a graph float type: the stored bytes when they already are, else converted. */
export function bytesAs(t: StoredTensor, type: FloatType): Uint8Array {
  if (STORED[type] === t.dtype) return t.bytes();
  return floatBytes(float32Of(t), type);
}

/** float32 values as little-endian bytes of `type`, rounded to nearest even. */
export function floatBytes(values: Float32Array, type: FloatType): Uint8Array {
  if (type === 'float32') return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint16Array(values.length);
  if (type === 'bfloat16') {
    for (let i = 0; i < bits.length; i++) {
      const b = bits[i];
      out[i] = (b & 0x7fffffff) > 0x7f800000 ? 0x7fc0 : (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
    }
  } else {
    for (let i = 0; i < bits.length; i++) out[i] = halfBits(bits[i]);
  }
  return new Uint8Array(out.buffer);
}

/** IEEE binary16 bits of a float32 (given as its bits): round to nearest even, overflow to infinity. */
function halfBits(b: number): number {
  const sign = (b >>> 16) & 0x8000;
  const abs = b & 0x7fffffff;
  if (abs >= 0x7f800000) return sign | (abs > 0x7f800000 ? 0x7e00 : 0x7c00); // NaN, infinity
  if (abs >= 0x477ff000) return sign | 0x7c00; // rounds past 65504
  if (abs < 0x38800000) {
    // subnormal half (or zero): value / 2^-24, rounded to nearest even
    if (abs < 0x33000000) return sign;
    const mant = (abs & 0x7fffff) | 0x800000;
    const shift = 126 - (abs >>> 23);
    const half = mant >>> shift;
    const rest = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    return sign | (half + (rest > mid || (rest === mid && half & 1) ? 1 : 0));
  }
  const rounded = abs + 0xfff + ((abs >>> 13) & 1);
  return sign | ((rounded - 0x38000000) >>> 13);
}
