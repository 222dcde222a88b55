import type { SafetensorsHeader, TensorInfo } from '../weights/safetensors.ts';
import { AdapterFormatError } from './format.ts';

/**
 * Refuses NaN and infinite adapter weights, fed the data section in chunks of any size (the
 * registry checks an upload as it streams; the engine its whole file at load). A float is
 * non-finite when its exponent bits are all ones, so only the two most significant bytes of each
 * element are read (little-endian: its last two): F32 and BF16 keep 8 exponent bits there
 * (0x7f80 of the top 16), F16 keeps 5 (0x7c00). Other dtypes are not checked.
 */
const EXPONENT_MASK: Record<string, number> = { F32: 0x7f80, BF16: 0x7f80, F16: 0x7c00 };
const BYTES: Record<string, number> = { F32: 4, BF16: 2, F16: 2 };

interface Checked {
  tensor: TensorInfo;
  size: number;
  mask: number;
}

export class FiniteWeightsCheck {
  private readonly tensors: Checked[];
  /** Bytes of the data section seen so far. */
  private offset = 0;
  /** The last byte seen: an element's second most significant byte may end the previous chunk. */
  private previous = 0;

  constructor(header: Pick<SafetensorsHeader, 'tensors'>) {
    this.tensors = [...header.tensors.values()]
      .filter((t) => EXPONENT_MASK[t.dtype] !== undefined && t.end > t.begin)
      .sort((a, b) => a.begin - b.begin)
      .map((tensor) => ({ tensor, size: BYTES[tensor.dtype], mask: EXPONENT_MASK[tensor.dtype] }));
  }

  /** Checks the next bytes of the data section; throws AdapterFormatError naming the tensor and element. */
  update(chunk: Uint8Array): void {
    const start = this.offset;
    const end = start + chunk.length;
    for (const { tensor, size, mask } of this.tensors) {
      if (tensor.end <= start) continue;
      if (tensor.begin >= end) break;
      // The most significant byte of element e is at tensor.begin + e*size + size-1.
      const top = tensor.begin + size - 1;
      const from = Math.max(start, top);
      let p = from + ((size - ((from - top) % size)) % size);
      for (const last = Math.min(end, tensor.end); p < last; p += size) {
        const hi = chunk[p - start];
        const lo = p - 1 >= start ? chunk[p - 1 - start] : this.previous;
        if ((((hi << 8) | lo) & mask) === mask) {
          throw new AdapterFormatError(
            `tensor "${tensor.name}" holds a non-finite value (NaN or infinity) at element ${(p - top) / size}`,
          );
        }
      }
    }
    if (chunk.length) this.previous = chunk[chunk.length - 1];
    this.offset = end;
  }
}

/** Whether this host stores numbers little-endian, as safetensors does (typed-array views then read its bits). */
const LITTLE_ENDIAN = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;

/**
 * Checks a whole safetensors file's weights at once (see FiniteWeightsCheck). A tensor aligned for
 * its element size is read one element a step through a typed-array view (a 22 MB adapter: 5.4 ms,
 * against 9.3 ms by byte pairs); others take the byte path.
 */
export function checkFiniteWeights(header: SafetensorsHeader, file: Uint8Array): void {
  const data = file.subarray(header.dataOffset);
  for (const tensor of header.tensors.values()) {
    const mask = EXPONENT_MASK[tensor.dtype];
    if (mask === undefined || tensor.end <= tensor.begin) continue;
    const size = BYTES[tensor.dtype];
    const at = data.byteOffset + tensor.begin;
    const count = (tensor.end - tensor.begin) / size;
    if (!LITTLE_ENDIAN || at % size !== 0 || !Number.isInteger(count)) {
      new FiniteWeightsCheck({ tensors: new Map([[tensor.name, tensor]]) }).update(data);
      continue;
    }
    const bad =
      size === 4
        ? nonFinite(new Int32Array(data.buffer, at, count), mask << 16) // Int32: values V8 keeps as small integers
        : nonFinite(new Uint16Array(data.buffer, at, count), mask);
    if (bad >= 0) {
      throw new AdapterFormatError(
        `tensor "${tensor.name}" holds a non-finite value (NaN or infinity) at element ${bad}`,
      );
    }
  }
}

/** The index of the first element whose exponent bits (`mask`) are all ones, or -1. */
function nonFinite(elements: Int32Array | Uint16Array, mask: number): number {
  for (let i = 0; i < elements.length; i++) if ((elements[i] & mask) === mask) return i;
  return -1;
}
