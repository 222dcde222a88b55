import type { AdapterFile, AdapterRef } from '../protocol/compute.ts';

/**
 * Where a compute node gets adapter files: a blob folder it shares with the registry, or the
 * registry it was configured with. Never a URL a request names.
 */
export interface BlobSource {
  read(ref: AdapterRef, file: AdapterFile): Promise<Uint8Array>;
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
    async read(_ref, file) {
      const blob = await store.get(file.sha256).catch(() => null);
      if (!blob) throw new BlobFetchError(`blob ${file.sha256} (${file.name}) is not in the blob store`);
      return new Uint8Array(await new Response(blob.body).arrayBuffer());
    },
  };
}

// What the registry allows in names (registry/names.ts): no "/", "?", "#" or "..", so a URL built
// from them stays on the configured registry's file route.
const VERSION_ID = /^([A-Za-z0-9][A-Za-z0-9._-]{0,99})@([1-9]\d{0,9})$/;
const FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/**
 * Downloads from the node's configured registry (its own URL and read key), by the version id the
 * edge sent (`NAME@VERSION`). Errors name the file, never the registry's address.
 */
export function registrySource(registryUrl: string, key?: string): BlobSource {
  const base = new URL(registryUrl);
  return {
    async read(ref, file) {
      const id = VERSION_ID.exec(ref.id);
      if (!id || !FILE_NAME.test(file.name))
        throw new BlobFetchError(`"${ref.id}" / "${file.name}" is not a registry file`);
      const path = `/v1/adapters/${id[1]}/versions/${id[2]}/files/${file.name}`;
      const res = await fetch(new URL(path, base), { headers: key ? { authorization: `Bearer ${key}` } : {} }).catch(
        (e: Error) => {
          throw new BlobFetchError(`the registry could not be reached for ${ref.id} ${file.name} (${e.name})`, {
            cause: e,
          });
        },
      );
      if (!res.ok) throw new BlobFetchError(`the registry answered HTTP ${res.status} for ${ref.id} ${file.name}`);
      return new Uint8Array(await res.arrayBuffer());
    },
  };
}

/** Tries each source in turn; if all fail, the error says why each did (the first is usually the telling one). */
export function firstOf(...sources: BlobSource[]): BlobSource {
  return {
    async read(ref, file) {
      if (!sources.length)
        throw new BlobFetchError('no blob folder or registry is configured to read adapter files from');
      const reasons: string[] = [];
      for (const s of sources) {
        try {
          return await s.read(ref, file);
        } catch (e) {
          reasons.push((e as Error).message);
        }
      }
      throw new BlobFetchError(reasons.join('; '));
    },
  };
}
