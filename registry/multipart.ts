/**
 * A streaming multipart/form-data reader for web streams: each part's body is itself a stream, read
 * straight off the request, so a file part of any size passes through with only a few network
 * chunks in memory. (@remix-run/multipart-parser 0.16 collects each part's bytes before handing it
 * over, which a 128 MB Worker cannot afford for adapter weights.)
 *
 * Usage: `for await (const part of readMultipart(body, boundary))`; read or cancel `part.body`
 * before asking for the next part (anything left unread is skipped).
 */
export interface FormPart {
  /** The form field name (`name=` of Content-Disposition). */
  name: string;
  /** `filename=` of Content-Disposition: present for file parts. */
  filename?: string;
  contentType?: string;
  body: ReadableStream<Uint8Array>;
}

export class MultipartError extends Error {
  override name = 'MultipartError';
}

export interface MultipartLimits {
  maxHeaderBytes?: number;
  maxParts?: number;
}

const CRLF = new Uint8Array([13, 10]);
const HEADER_END = new Uint8Array([13, 10, 13, 10]);

/** The boundary of a multipart/form-data Content-Type, or null if it is not one. */
export function formDataBoundary(contentType: string | undefined | null): string | null {
  if (!contentType || !/^multipart\/form-data\s*(;|$)/i.test(contentType)) return null;
  const match = /;\s*boundary=(?:"([^"]{1,70})"|([^\s;]{1,70}))/i.exec(contentType);
  return match ? (match[1] ?? match[2]) : null;
}

export async function* readMultipart(
  stream: ReadableStream<Uint8Array>,
  boundary: string,
  limits: MultipartLimits = {},
): AsyncGenerator<FormPart, void, undefined> {
  const maxHeaderBytes = limits.maxHeaderBytes ?? 16 * 1024;
  const maxParts = limits.maxParts ?? 100;
  const input = new Buffered(stream);
  // The first delimiter has no CRLF in front of it: pretend it has, so every delimiter looks alike.
  input.unshift(CRLF);
  const delimiter = new TextEncoder().encode(`\r\n--${boundary}`);
  try {
    if (!(await input.skipTo(delimiter))) throw new MultipartError('multipart body has no opening boundary');
    for (let count = 0; ; count++) {
      // After a delimiter: "--" ends the body, CRLF starts a part.
      const after = await input.take(2);
      if (after[0] === 45 && after[1] === 45) return;
      if (after[0] !== 13 || after[1] !== 10) throw new MultipartError('malformed multipart boundary line');
      if (count >= maxParts) throw new MultipartError(`more than ${maxParts} parts`);
      const headerBytes = await input.takeUntil(HEADER_END, maxHeaderBytes);
      if (!headerBytes) throw new MultipartError('multipart part headers are incomplete or too large');
      const part = parsePartHeaders(new TextDecoder().decode(headerBytes));
      const body = input.streamUntil(delimiter);
      yield { ...part, body: body.stream };
      await body.drain();
    }
  } finally {
    await input.release();
  }
}

function parsePartHeaders(text: string): Omit<FormPart, 'body'> {
  const headers = new Map<string, string>();
  for (const line of text.split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  const disposition = headers.get('content-disposition');
  if (!disposition || !/^form-data\s*;/i.test(disposition))
    throw new MultipartError('a part lacks "Content-Disposition: form-data"');
  const params = dispositionParams(disposition);
  const name = params.get('name');
  if (name === undefined) throw new MultipartError('a part has no field name');
  return {
    name,
    filename: params.get('filename*') ?? params.get('filename'),
    contentType: headers.get('content-type'),
  };
}

function dispositionParams(value: string): Map<string, string> {
  const params = new Map<string, string>();
  const re = /;\s*([^\s=;]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;]*))/g;
  for (let m = re.exec(value); m; m = re.exec(value)) {
    const key = m[1].toLowerCase();
    let v = m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : m[3].trim();
    if (key.endsWith('*')) {
      // RFC 5987: charset'lang'percent-encoded
      const ext = /^([^']*)'[^']*'(.*)$/.exec(v);
      if (ext) {
        try {
          v = decodeURIComponent(ext[2]);
        } catch {
          throw new MultipartError(`malformed ${key} parameter`);
        }
      }
    }
    params.set(key, v);
  }
  return params;
}

/** A reader with push-back and pattern search over a byte stream. */
class Buffered {
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  private buf: Uint8Array = new Uint8Array(0);
  private ended = false;

  constructor(stream: ReadableStream<Uint8Array>) {
    this.reader = stream.getReader();
  }

  unshift(bytes: Uint8Array): void {
    this.buf = concat(bytes, this.buf);
  }

  /** Reads one more network chunk into the buffer; false at the end of the stream. */
  private async fill(): Promise<boolean> {
    if (this.ended) return false;
    const r = await this.reader.read();
    if (r.done) {
      this.ended = true;
      return false;
    }
    this.buf = this.buf.length ? concat(this.buf, r.value) : r.value;
    return true;
  }

  async take(n: number): Promise<Uint8Array> {
    while (this.buf.length < n) if (!(await this.fill())) throw new MultipartError('multipart body ends unexpectedly');
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  /** Discards everything up to and including `pattern`; false if the stream ends first. */
  async skipTo(pattern: Uint8Array): Promise<boolean> {
    for (;;) {
      const at = indexOf(this.buf, pattern);
      if (at >= 0) {
        this.buf = this.buf.subarray(at + pattern.length);
        return true;
      }
      this.buf = this.buf.subarray(Math.max(0, this.buf.length - pattern.length + 1));
      if (!(await this.fill())) return false;
    }
  }

  /** The bytes before `pattern` (consuming the pattern), or null past `max` bytes or at the end. */
  async takeUntil(pattern: Uint8Array, max: number): Promise<Uint8Array | null> {
    for (;;) {
      const at = indexOf(this.buf, pattern);
      if (at >= 0 && at <= max) {
        const out = this.buf.subarray(0, at);
        this.buf = this.buf.subarray(at + pattern.length);
        return out;
      }
      if (this.buf.length > max + pattern.length || !(await this.fill())) return null;
    }
  }

  /** A stream of the bytes before the next `pattern`; the pattern itself is consumed at its end. */
  streamUntil(pattern: Uint8Array): { stream: ReadableStream<Uint8Array>; drain: () => Promise<void> } {
    let finished = false;
    const nextChunk = async (): Promise<Uint8Array | null> => {
      for (;;) {
        if (finished) return null;
        const at = indexOf(this.buf, pattern);
        if (at >= 0) {
          const out = this.buf.subarray(0, at);
          this.buf = this.buf.subarray(at + pattern.length);
          finished = true;
          return out;
        }
        // Everything but a possible start of the pattern at the end is part content.
        const safe = this.buf.length - pattern.length + 1;
        if (safe > 0) {
          const out = this.buf.subarray(0, safe);
          this.buf = this.buf.subarray(safe);
          return out;
        }
        if (!(await this.fill())) throw new MultipartError('multipart body ends in the middle of a part');
      }
    };
    const stream = new ReadableStream<Uint8Array>(
      {
        async pull(controller) {
          try {
            const chunk = await nextChunk();
            if (chunk === null) controller.close();
            else if (chunk.length) controller.enqueue(chunk);
            if (finished && chunk !== null) controller.close();
          } catch (e) {
            controller.error(e);
          }
        },
      },
      { highWaterMark: 0 },
    );
    return {
      stream,
      drain: async () => {
        while ((await nextChunk()) !== null);
      },
    };
  }

  async release(): Promise<void> {
    if (!this.ended) await this.reader.cancel().catch(() => {});
    this.reader.releaseLock();
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

function indexOf(haystack: Uint8Array, needle: Uint8Array, from = 0): number {
  const first = needle[0];
  const last = haystack.length - needle.length;
  for (let i = haystack.indexOf(first, from); i !== -1 && i <= last; i = haystack.indexOf(first, i + 1)) {
    let j = 1;
    while (j < needle.length && haystack[i + j] === needle[j]) j++;
    if (j === needle.length) return i;
  }
  return -1;
}
