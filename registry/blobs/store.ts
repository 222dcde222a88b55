import { SHA256_RE } from '../names.ts';

/**
 * Content-addressed blob storage: bytes go in as a stream, come back under their sha256. Two real
 * implementations: a local folder (Node) and an R2 bucket (Workers). Neither ever builds a path or
 * key from anything but a validated sha256 (or a random id for partial uploads).
 */
export interface StoredBlob {
  sha256: string;
  bytes: number;
  /** False when the content was already in the store (nothing new was written). */
  created: boolean;
}

export interface BlobListing {
  sha256: string;
  bytes: number;
  uploaded: Date;
}

export interface PutOptions {
  /** If given, the content must hash to this; otherwise nothing is stored and BlobIntegrityError is thrown. */
  sha256?: string;
  /**
   * Called with the content's sha256 once it is known (at once when declared), before the blob
   * appears under it or is reused: the upload takes its lease here (queries/blobs.ts), so no
   * cleanup or sweep can delete the blob between this call and the version's commit. The store
   * checks for existing content only after it returns.
   */
  reserve?: (sha256: string) => Promise<void>;
}

export interface BlobStore {
  /** Streams `body` in while hashing it; never holds the whole content in memory. */
  put(body: ReadableStream<Uint8Array> | Uint8Array, options?: PutOptions): Promise<StoredBlob>;
  /** The content as a stream, or null if absent. */
  get(sha256: string): Promise<{ body: ReadableStream<Uint8Array>; bytes: number } | null>;
  has(sha256: string): Promise<boolean>;
  delete(sha256: string): Promise<void>;
  list(): AsyncIterable<BlobListing>;
  /** Removes leftovers of uploads that never finished (a crash mid-upload) started before `before`. */
  sweepPartial(before: Date): Promise<number>;
}

export class BlobIntegrityError extends Error {
  override name = 'BlobIntegrityError';
  constructor(
    readonly expected: string,
    readonly actual: string,
  ) {
    super(`content hashes to sha256 ${actual}, not the declared ${expected}`);
  }
}

export function assertSha256(sha256: string): string {
  if (!SHA256_RE.test(sha256)) throw new Error(`not a sha256: ${JSON.stringify(sha256).slice(0, 80)}`);
  return sha256;
}

export function toStream(body: ReadableStream<Uint8Array> | Uint8Array): ReadableStream<Uint8Array> {
  if (!(body instanceof Uint8Array)) return body;
  return new ReadableStream({
    start(controller) {
      if (body.length) controller.enqueue(body);
      controller.close();
    },
  });
}
