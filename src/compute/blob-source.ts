import type { AdapterFile } from '../protocol/compute.ts';

/** Where a compute node gets adapter files: a blob folder it shares with the registry, or HTTP. */
export interface BlobSource {
  read(file: AdapterFile): Promise<Uint8Array>;
}

export class BlobFetchError extends Error {
  override name = 'BlobFetchError';
}

/** The one call a node makes of the registry's blob store (which satisfies it); compute never imports the registry. */
export interface BlobReader {
  get(sha256: string): Promise<{ body: ReadableStream<Uint8Array>; bytes: number } | null>;
}

/** Reads from a blob store the node shares with the registry (e.g. its folder on the same host). */
export function storeSource(store: BlobReader): BlobSource {
  return {
    async read(file) {
      const blob = await store.get(file.sha256).catch(() => null);
      if (!blob) throw new BlobFetchError(`blob ${file.sha256} (${file.name}) is not in the blob store`);
      return new Uint8Array(await new Response(blob.body).arrayBuffer());
    },
  };
}

/** Downloads `file.url`, with the node's registry key. */
export function httpSource(key?: string): BlobSource {
  return {
    async read(file) {
      if (!file.url) throw new BlobFetchError(`no url for ${file.name} and no blob folder configured`);
      const res = await fetch(file.url, { headers: key ? { authorization: `Bearer ${key}` } : {} });
      if (!res.ok) throw new BlobFetchError(`GET ${file.url}: HTTP ${res.status}`);
      return new Uint8Array(await res.arrayBuffer());
    },
  };
}

/** Tries each source in turn. */
export function firstOf(...sources: BlobSource[]): BlobSource {
  return {
    async read(file) {
      let last: unknown;
      for (const s of sources) {
        try {
          return await s.read(file);
        } catch (e) {
          last = e;
        }
      }
      throw last;
    },
  };
}
