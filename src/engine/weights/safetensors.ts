/**
 * The safetensors header, parsed and validated without trusting any of it: the same checks as the
 * reference Rust implementation (contiguous, in-bounds, non-overlapping data; byte sizes that match
 * dtype x shape). Pure and runtime-agnostic: the registry runs it inside a Cloudflare Worker on the
 * first bytes of an upload, the engine runs it on files.
 */
const DTYPE_BYTES = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  I64: 8,
  U64: 8,
  F64: 8,
} as const;
export type Dtype = keyof typeof DTYPE_BYTES;

export interface TensorInfo {
  name: string;
  dtype: Dtype;
  shape: number[];
  /** Byte range relative to the start of the data section. */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  /** Byte offset of the data section in the file (8 + JSON header length). */
  dataOffset: number;
  tensors: Map<string, TensorInfo>;
  metadata: Record<string, string>;
}

export class SafetensorsError extends Error {
  override name = 'SafetensorsError';
}

/** A header larger than this is refused before anything is allocated for it. */
const MAX_HEADER_BYTES = 16 * 1024 * 1024;

/** Reads the JSON header length from the first 8 bytes and checks it against the file size. */
export function headerLength(first8: Uint8Array, fileSize: number, maxHeaderBytes = MAX_HEADER_BYTES): number {
  if (fileSize < 8 || first8.length < 8)
    throw new SafetensorsError(`file too small to be safetensors (${fileSize} bytes)`);
  const n = new DataView(first8.buffer, first8.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(maxHeaderBytes)) {
    throw new SafetensorsError(`header length ${n} exceeds the ${maxHeaderBytes}-byte limit`);
  }
  if (n + 8n > BigInt(fileSize)) {
    throw new SafetensorsError(`header length ${n} runs past the end of the ${fileSize}-byte file`);
  }
  if (n < 2n) throw new SafetensorsError(`header length ${n} is too small for a JSON object`);
  return Number(n);
}

/**
 * Parses and validates the header. `prefix` must hold at least the first 8 + header-length bytes
 * of the file; `fileSize` is the size of the whole file.
 */
export function parseHeader(
  prefix: Uint8Array,
  fileSize: number,
  maxHeaderBytes = MAX_HEADER_BYTES,
): SafetensorsHeader {
  const n = headerLength(prefix, fileSize, maxHeaderBytes);
  if (prefix.length < 8 + n) throw new SafetensorsError('truncated header');
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(prefix.subarray(8, 8 + n)));
  } catch (e) {
    throw new SafetensorsError(`header is not valid UTF-8 JSON: ${(e as Error).message}`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new SafetensorsError('header must be a JSON object');
  }
  const dataSize = fileSize - 8 - n;
  const tensors = new Map<string, TensorInfo>();
  let metadata: Record<string, string> = {};
  for (const [name, raw] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      metadata = parseMetadata(raw);
      continue;
    }
    tensors.set(name, parseTensor(name, raw, dataSize));
  }
  // Sorted by offset, the tensors must tile the data section exactly: no gap, no overlap.
  let cursor = 0;
  for (const t of [...tensors.values()].sort((a, b) => a.begin - b.begin || a.end - b.end)) {
    if (t.begin < cursor)
      throw new SafetensorsError(`tensor "${t.name}" overlaps another tensor (offset ${t.begin} < ${cursor})`);
    if (t.begin > cursor)
      throw new SafetensorsError(
        `gap in the data section before tensor "${t.name}" (offset ${t.begin}, expected ${cursor})`,
      );
    cursor = t.end;
  }
  if (cursor !== dataSize) {
    throw new SafetensorsError(
      `data section is ${dataSize} bytes but the tensors cover ${cursor} (truncated or trailing bytes)`,
    );
  }
  return { dataOffset: 8 + n, tensors, metadata };
}

function parseMetadata(raw: unknown): Record<string, string> {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw))
    throw new SafetensorsError('__metadata__ must be an object');
  for (const [k, v] of Object.entries(raw)) {
    if (typeof v !== 'string') throw new SafetensorsError(`__metadata__["${k}"] must be a string`);
  }
  return raw as Record<string, string>;
}

function parseTensor(name: string, raw: unknown, dataSize: number): TensorInfo {
  if (raw === null || typeof raw !== 'object') throw new SafetensorsError(`tensor "${name}": entry must be an object`);
  const { dtype, shape, data_offsets: offsets } = raw as Record<string, unknown>;
  if (typeof dtype !== 'string' || !(dtype in DTYPE_BYTES)) {
    throw new SafetensorsError(`tensor "${name}": unknown dtype ${JSON.stringify(dtype)}`);
  }
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new SafetensorsError(`tensor "${name}": shape must be an array of non-negative integers`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
    throw new SafetensorsError(`tensor "${name}": data_offsets must be two non-negative integers`);
  }
  const [begin, end] = offsets as [number, number];
  if (end < begin) throw new SafetensorsError(`tensor "${name}": data_offsets end ${end} < begin ${begin}`);
  if (end > dataSize)
    throw new SafetensorsError(`tensor "${name}": data ends at ${end}, past the ${dataSize}-byte data section`);
  const elements = (shape as number[]).reduce((a, b) => a * b, 1);
  const bytes = elements * DTYPE_BYTES[dtype as Dtype];
  if (bytes !== end - begin) {
    throw new SafetensorsError(
      `tensor "${name}": ${dtype}${JSON.stringify(shape)} needs ${bytes} bytes but data_offsets span ${end - begin}`,
    );
  }
  return { name, dtype: dtype as Dtype, shape: shape as number[], begin, end };
}

/** Converts little-endian F32/F16/BF16 bytes to a fresh Float32Array. */
export function toFloat32(bytes: Uint8Array, dtype: Dtype, name = 'tensor'): Float32Array {
  const out = new Float32Array(bytes.length / (dtype === 'F32' ? 4 : 2));
  return toFloat32Into(bytes, dtype, out, 0, name);
}

/**
 * Converts little-endian F32/F16/BF16 bytes into `out` from index `at`, and returns the values' view
 * there. Lets a caller reuse one buffer for many tensors: first writes to fresh memory (its page
 * faults) cost as much as the conversion itself, ten times more on some virtual machines.
 */
export function toFloat32Into(bytes: Uint8Array, dtype: Dtype, out: Float32Array, at: number, name = 'tensor') {
  switch (dtype) {
    case 'F32': {
      const n = bytes.length / 4;
      new Uint8Array(out.buffer, out.byteOffset + at * 4, bytes.length).set(bytes);
      return out.subarray(at, at + n);
    }
    case 'BF16': {
      const src = halves(bytes);
      const bits = new Uint32Array(out.buffer, out.byteOffset + at * 4, src.length);
      for (let i = 0; i < src.length; i++) bits[i] = src[i] << 16;
      return out.subarray(at, at + src.length);
    }
    case 'F16': {
      const src = halves(bytes);
      for (let i = 0; i < src.length; i++) out[at + i] = halfToFloat(src[i]);
      return out.subarray(at, at + src.length);
    }
    default:
      throw new SafetensorsError(`${name}: dtype ${dtype} is not supported for weights (F32, F16 or BF16)`);
  }
}

/** 16-bit words of `bytes`: a view when aligned, else a copy. */
function halves(bytes: Uint8Array): Uint16Array {
  if (bytes.byteOffset % 2 === 0) return new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.length / 2);
  const out = new Uint16Array(bytes.length / 2);
  new Uint8Array(out.buffer).set(bytes);
  return out;
}

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** Serialises float32 tensors as a standard safetensors file (header padded to 8 bytes). */
export function encodeSafetensors(
  tensors: Array<{ name: string; shape: number[]; data: Float32Array }>,
  metadata?: Record<string, string>,
): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  const raw = new TextEncoder().encode(JSON.stringify(header));
  const jsonBytes = new Uint8Array(Math.ceil(raw.length / 8) * 8).fill(0x20); // pad with spaces
  jsonBytes.set(raw);
  const out = new Uint8Array(8 + jsonBytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(jsonBytes.length), true);
  out.set(jsonBytes, 8);
  let at = 8 + jsonBytes.length;
  for (const t of tensors) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), at);
    at += t.data.byteLength;
  }
  return out;
}
