import { readFile } from 'node:fs/promises';

/** One file of an adapter version, as the edge describes it. */
export interface AdapterFile {
  name: string;
  sha256: string;
  bytes: number;
  /** Where to download it (the registry's file route); optional when blobs come from a folder. */
  url?: string;
}

/** Where a compute node gets adapter files: a blob folder it shares with the registry, or HTTP. */
export interface BlobSource {
  read(file: AdapterFile): Promise<Uint8Array>;
}

export class BlobFetchError extends Error {
  override name = 'BlobFetchError';
}

/** Reads `<root>/<path(sha256)>`; `path` is the folder store's own layout. */
export function folderSource(root: string, path: (sha256: string) => string): BlobSource {
  return {
    async read(file) {
      if (!/^[0-9a-f]{64}$/.test(file.sha256)) throw new BlobFetchError(`bad sha256 "${file.sha256}"`);
      try {
        return new Uint8Array(await readFile(`${root}/${path(file.sha256)}`));
      } catch {
        throw new BlobFetchError(`blob ${file.sha256} (${file.name}) is not in ${root}`);
      }
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

/** Where the registry's folder store keeps a blob (kept in step with registry/blobs). */
export function blobPath(sha256: string): string {
  return `${sha256.slice(0, 2)}/${sha256}`;
}
