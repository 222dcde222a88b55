import type { R2Bucket, R2UploadedPart } from '@cloudflare/workers-types/index.ts';
import { digestStreamHasher, type HasherFactory } from '../hash.ts';
import {
  assertSha256,
  BlobIntegrityError,
  toStream,
  type BlobListing,
  type BlobStore,
  type PutOptions,
  type StoredBlob,
} from './store.ts';

const MiB = 1024 * 1024;
/** R2 multipart parts must be at least 5 MiB (except the last) and all the same size. */
const MIN_PART_BYTES = 5 * MiB;
const BLOB_PREFIX = 'sha256/';
const PARTIAL_PREFIX = 'partial/';

export interface R2BlobStoreOptions {
  /** Incremental SHA-256; defaults to the Workers runtime's crypto.DigestStream. */
  hasher?: HasherFactory;
  /** Size of the chunks uploads are cut into (and the most this store holds in memory at once). */
  partBytes?: number;
}

/**
 * Blobs in an R2 bucket under `sha256/<hex>`.
 *
 * An upload's sha256 is known only at its end, and R2 cannot rename, so the body is cut into
 * fixed-size parts and never held whole: content that fits in one part is hashed and `put` under
 * its final key with R2's own sha256 check; larger content goes up as a multipart upload, straight
 * to its final key when the caller declared the sha256 (verified before `complete`, so a wrong
 * object never appears), otherwise to `partial/<random>` and then copied part by part (ranged reads)
 * to its final key. R2 drops multipart uploads that are never completed; `sweepPartial` removes
 * copies a crash left behind.
 */
export class R2BlobStore implements BlobStore {
  private readonly hasher: HasherFactory;
  private readonly partBytes: number;

  constructor(
    private readonly bucket: R2Bucket,
    options: R2BlobStoreOptions = {},
  ) {
    const hasher = options.hasher ?? digestStreamHasher();
    if (!hasher) throw new Error('R2BlobStore: no crypto.DigestStream in this runtime; pass a hasher');
    this.hasher = hasher;
    this.partBytes = Math.max(MIN_PART_BYTES, options.partBytes ?? 8 * MiB);
  }

  private key(sha256: string): string {
    return BLOB_PREFIX + assertSha256(sha256);
  }

  async put(body: ReadableStream<Uint8Array> | Uint8Array, options: PutOptions = {}): Promise<StoredBlob> {
    const parts = new PartReader(toStream(body), this.partBytes);
    const hasher = this.hasher();
    try {
      const first = await parts.next();
      if (!parts.more) {
        // Fits in one part: hash it, then let R2 check the same hash on the way in.
        await hasher.update(first);
        const sha256 = await hasher.digest();
        if (options.sha256 !== undefined && options.sha256 !== sha256)
          throw new BlobIntegrityError(options.sha256, sha256);
        await options.reserve?.(sha256);
        if (await this.has(sha256)) return { sha256, bytes: first.length, created: false };
        await this.bucket.put(this.key(sha256), first, { sha256 });
        return { sha256, bytes: first.length, created: true };
      }
      const expected = options.sha256;
      if (expected !== undefined) await options.reserve?.(expected);
      if (expected !== undefined && (await this.has(expected))) {
        // Already stored: still read and verify what was sent, but write nothing.
        let bytes = 0;
        for (let part = first; part.length; part = await parts.next()) {
          await hasher.update(part);
          bytes += part.length;
        }
        const sha256 = await hasher.digest();
        if (sha256 !== expected) throw new BlobIntegrityError(expected, sha256);
        return { sha256, bytes, created: false };
      }
      const target = expected !== undefined ? this.key(expected) : PARTIAL_PREFIX + crypto.randomUUID();
      const upload = await this.bucket.createMultipartUpload(target);
      let bytes = 0;
      let sha256: string;
      try {
        const uploaded: R2UploadedPart[] = [];
        for (let part = first; part.length; part = await parts.next()) {
          await hasher.update(part);
          bytes += part.length;
          uploaded.push(await upload.uploadPart(uploaded.length + 1, part));
        }
        sha256 = await hasher.digest();
        if (expected !== undefined && sha256 !== expected) throw new BlobIntegrityError(expected, sha256);
        await upload.complete(uploaded);
      } catch (e) {
        await upload.abort().catch(() => {});
        throw e;
      }
      if (expected !== undefined) return { sha256, bytes, created: true };
      try {
        await options.reserve?.(sha256);
        if (await this.has(sha256)) return { sha256, bytes, created: false };
        await this.copy(target, this.key(sha256), bytes);
        return { sha256, bytes, created: true };
      } finally {
        await this.bucket.delete(target);
      }
    } finally {
      await parts.release();
    }
  }

  /** Copies a large object part by part, with ranged reads: never more than one part in memory. */
  private async copy(from: string, to: string, bytes: number): Promise<void> {
    const upload = await this.bucket.createMultipartUpload(to);
    try {
      const parts: R2UploadedPart[] = [];
      for (let offset = 0; offset < bytes; offset += this.partBytes) {
        const length = Math.min(this.partBytes, bytes - offset);
        const object = await this.bucket.get(from, { range: { offset, length } });
        if (!object) throw new Error(`R2: ${from} vanished during the copy`);
        parts.push(await upload.uploadPart(parts.length + 1, new Uint8Array(await object.arrayBuffer())));
      }
      await upload.complete(parts);
    } catch (e) {
      await upload.abort().catch(() => {});
      throw e;
    }
  }

  async get(sha256: string) {
    const object = await this.bucket.get(this.key(sha256));
    if (!object) return null;
    return { body: object.body as unknown as ReadableStream<Uint8Array>, bytes: object.size };
  }

  async has(sha256: string): Promise<boolean> {
    return (await this.bucket.head(this.key(sha256))) !== null;
  }

  async delete(sha256: string): Promise<void> {
    await this.bucket.delete(this.key(sha256));
  }

  async *list(): AsyncIterable<BlobListing> {
    let cursor: string | undefined;
    do {
      const page = await this.bucket.list({ prefix: BLOB_PREFIX, cursor });
      for (const o of page.objects)
        yield { sha256: o.key.slice(BLOB_PREFIX.length), bytes: o.size, uploaded: o.uploaded };
      cursor = page.truncated ? page.cursor : undefined;
    } while (cursor);
  }

  async sweepPartial(before: Date): Promise<number> {
    let removed = 0;
    let cursor: string | undefined;
    do {
      const page = await this.bucket.list({ prefix: PARTIAL_PREFIX, cursor });
      const old = page.objects.filter((o) => o.uploaded < before).map((o) => o.key);
      if (old.length) await this.bucket.delete(old);
      removed += old.length;
      cursor = page.truncated ? page.cursor : undefined;
    } while (cursor);
    return removed;
  }
}

/**
 * Cuts a stream into chunks of exactly `size` bytes; the last one is shorter, then empty chunks
 * follow. `more` says whether anything may follow the chunk just returned.
 */
class PartReader {
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  private pending: Uint8Array | null = null;
  private done = false;

  constructor(
    stream: ReadableStream<Uint8Array>,
    private readonly size: number,
  ) {
    this.reader = stream.getReader();
  }

  get more(): boolean {
    return !this.done || this.pending !== null;
  }

  async next(): Promise<Uint8Array> {
    const pieces: Uint8Array[] = [];
    let filled = 0;
    while (filled < this.size) {
      let chunk = this.pending;
      this.pending = null;
      if (!chunk) {
        if (this.done) break;
        const r = await this.reader.read();
        if (r.done) {
          this.done = true;
          break;
        }
        chunk = r.value;
      }
      const take = Math.min(chunk.length, this.size - filled);
      pieces.push(take < chunk.length ? chunk.subarray(0, take) : chunk);
      filled += take;
      if (take < chunk.length) this.pending = chunk.subarray(take);
    }
    // A full part may be the last one: peek so that `more` is exact.
    if (filled === this.size && !this.pending && !this.done) {
      const r = await this.reader.read();
      if (r.done) this.done = true;
      else if (r.value.length) this.pending = r.value;
    }
    if (pieces.length === 1) return pieces[0];
    const out = new Uint8Array(filled);
    let at = 0;
    for (const p of pieces) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }

  async release(): Promise<void> {
    if (!this.done) await this.reader.cancel().catch(() => {});
    this.reader.releaseLock();
  }
}
