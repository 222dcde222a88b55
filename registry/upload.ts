import {
  headerLength,
  parseHeader,
  SafetensorsError,
  type SafetensorsHeader,
} from '../src/engine/weights/safetensors.ts';
import { tooLarge } from '../src/http/errors.ts';

/**
 * Checks a safetensors upload as it streams: the header is parsed and validated from the first
 * bytes, before any byte is passed on (so nothing reaches the blob store unless the header is
 * sane and `onHeader` accepts it), and the length is checked against what the header describes as
 * the rest streams through. Failures error the stream with SafetensorsError (or a 413 ApiError).
 */
export interface SafetensorsCheck {
  maxHeaderBytes: number;
  maxBytes: number;
  /** Called once with the validated header and the file size it implies; throw to refuse. */
  onHeader(header: SafetensorsHeader, fileSize: number): void | Promise<void>;
  /** Called with each piece of the data section, in order, before it is passed on; throw to refuse. */
  onData?(bytes: Uint8Array): void;
}

export function checkedSafetensors(
  body: ReadableStream<Uint8Array>,
  check: SafetensorsCheck,
): ReadableStream<Uint8Array> {
  let prefix: Uint8Array | null = new Uint8Array(0);
  let expected = -1;
  let seen = 0;
  return body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      async transform(chunk, controller) {
        seen += chunk.length;
        if (prefix === null) {
          if (seen > expected)
            throw new SafetensorsError(
              `the file is longer than the ${expected} bytes its header describes (trailing bytes)`,
            );
          check.onData?.(chunk);
          controller.enqueue(chunk);
          return;
        }
        prefix = concat(prefix, chunk);
        if (prefix.length < 8) return;
        const n = headerLength(prefix, Number.MAX_SAFE_INTEGER, check.maxHeaderBytes);
        if (prefix.length < 8 + n) return;
        expected = 8 + n + dataBytes(prefix.subarray(8, 8 + n));
        if (expected > check.maxBytes)
          throw tooLarge(`the weights file is ${expected} bytes; the limit is ${check.maxBytes}`);
        await check.onHeader(parseHeader(prefix.subarray(0, 8 + n), expected, check.maxHeaderBytes), expected);
        if (seen > expected)
          throw new SafetensorsError(
            `the file is longer than the ${expected} bytes its header describes (trailing bytes)`,
          );
        check.onData?.(prefix.subarray(8 + n));
        controller.enqueue(prefix);
        prefix = null;
      },
      flush() {
        if (prefix !== null) {
          if (prefix.length < 8)
            throw new SafetensorsError(`file too small to be safetensors (${prefix.length} bytes)`);
          const n = headerLength(prefix, Number.MAX_SAFE_INTEGER, check.maxHeaderBytes);
          throw new SafetensorsError(`header length ${n} runs past the end of the ${prefix.length}-byte file`);
        }
        if (seen < expected)
          throw new SafetensorsError(`the file is truncated: ${seen} bytes, but its header describes ${expected}`);
      },
    }),
  );
}

/** The data-section size a header claims: the largest end offset (fully validated later by parseHeader). */
function dataBytes(json: Uint8Array): number {
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(json));
  } catch (e) {
    throw new SafetensorsError(`header is not valid UTF-8 JSON: ${(e as Error).message}`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header))
    throw new SafetensorsError('header must be a JSON object');
  let end = 0;
  for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') continue;
    const offsets = (entry as { data_offsets?: unknown } | null)?.data_offsets;
    if (Array.isArray(offsets) && Number.isSafeInteger(offsets[1])) end = Math.max(end, offsets[1] as number);
    else throw new SafetensorsError(`tensor "${name}": data_offsets must be two non-negative integers`);
  }
  return end;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (!a.length) return b;
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}
