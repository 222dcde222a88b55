/**
 * SHA-256 without node: works in Workers and Node alike. Streams are hashed incrementally with
 * whatever the runtime offers: `crypto.DigestStream` in Workers (registry/hash.ts), node:crypto in
 * Node (registry/hash-node.ts); whoever builds the app picks one.
 */
interface Sha256Hasher {
  update(chunk: Uint8Array): void | Promise<void>;
  /** Lowercase hex digest. Call once, after the last update. */
  digest(): Promise<string>;
}
export type HasherFactory = () => Sha256Hasher;

function toHex(bytes: ArrayBuffer | Uint8Array): string {
  const u8 = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  let out = '';
  for (let i = 0; i < u8.length; i++) out += u8[i].toString(16).padStart(2, '0');
  return out;
}

export async function sha256Hex(data: Uint8Array | string): Promise<string> {
  const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data;
  return toHex(await crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>));
}

interface DigestStreamLike extends WritableStream<Uint8Array> {
  readonly digest: Promise<ArrayBuffer>;
}
type DigestStreamCtor = new (algorithm: string) => DigestStreamLike;

/** Workers' incremental hasher; undefined where the runtime has no `crypto.DigestStream`. */
export function digestStreamHasher(): HasherFactory | undefined {
  const Ctor = (globalThis.crypto as unknown as { DigestStream?: DigestStreamCtor }).DigestStream;
  if (!Ctor) return undefined;
  return () => {
    const stream = new Ctor('SHA-256');
    const writer = stream.getWriter();
    return {
      update: (chunk) => writer.write(chunk),
      async digest() {
        await writer.close();
        return toHex(await stream.digest);
      },
    };
  };
}
