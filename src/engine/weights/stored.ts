import { toFloat32, type Dtype } from './safetensors.ts';
import type { Tensor } from './tensor.ts';

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

/** The weights of an in-memory model (tests, synthetic models). */
export function sourceOf(tensors: ReadonlyMap<string, Tensor>): WeightSource {
  const out = new Map<string, StoredTensor>();
  for (const [name, t] of tensors) {
    out.set(name, { dims: t.dims, dtype: 'F32', bytes: () => new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength) });
  }
  return out;
}

/** A tensor's values as float32: a view of the stored bytes when they already are (and aligned). */
export function float32Of(t: StoredTensor): Float32Array {
  const bytes = t.bytes();
  if (t.dtype === 'F32' && bytes.byteOffset % 4 === 0) return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  return toFloat32(bytes, t.dtype);
}

/** Bytes of all stored tensors. */
export function storedBytes(source: WeightSource): number {
  let n = 0;
  for (const t of source.values()) n += t.dims.reduce((a, b) => a * b, 1) * (t.dtype === 'F32' ? 4 : 2);
  return n;
}
