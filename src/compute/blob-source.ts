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
      return readAtMost(blob.body, file.bytes, `blob ${file.sha256} (${file.name})`);
    },
  };
}

// What the registry allows in names (registry/names.ts): no "/", "?", "#" or "..", so a URL built
// from them stays on the configured registry's file route.
const VERSION_ID = /^([A-Za-z0-9][A-Za-z0-9._-]{0,99})@([1-9]\d{0,9})$/;
const FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/**
 * How long a node waits on its registry: for an answer's headers, and for the next bytes of its
 * body. A file GET that runs past either (a request lost on the way, a stalled stream) is made once
 * more. Both are well under the edge's wait for a node's first byte (10 s by default), which covers
 * fetching an adapter before the first token.
 */
interface RegistryTimeouts {
  headersMs: number;
  stallMs: number;
}
const REGISTRY_TIMEOUTS: RegistryTimeouts = { headersMs: 4000, stallMs: 4000 };

/** The registry did not answer in time, or could not be reached: worth one more try. */
class RegistryUnreachable extends BlobFetchError {}

/**
 * Downloads from the node's configured registry (its own URL and read key), by the version id the
 * edge sent (`NAME@VERSION`). Redirects are not followed (the key would go where the registry
 * points; the registry never redirects), and no more is read than the manifest's size. Errors name
 * the file, never the registry's address.
 */
export function registrySource(registryUrl: string, key?: string, timeouts = REGISTRY_TIMEOUTS): BlobSource {
  const base = new URL(registryUrl);
  return {
    async read(ref, file) {
      const id = VERSION_ID.exec(ref.id);
      if (!id || !FILE_NAME.test(file.name))
        throw new BlobFetchError(`"${ref.id}" / "${file.name}" is not a registry file`);
      const url = new URL(`/v1/adapters/${id[1]}/versions/${id[2]}/files/${file.name}`, base);
      const what = `${ref.id} ${file.name}`;
      const download = async () => {
        const { res, bounded } = await registryFetch(url, key, what, timeouts);
        if (!res.ok) {
          await res.body?.cancel();
          throw new BlobFetchError(`the registry answered HTTP ${res.status} for ${what}`);
        }
        return readAtMost(res.body, file.bytes, `the registry's answer for ${what}`, bounded);
      };
      // A GET is safe to repeat; only once, so that a registry that is down fails fast.
      return download().catch((e: Error) => {
        if (e instanceof RegistryUnreachable) return download();
        throw e;
      });
    },
  };
}

/**
 * A GET of the node's registry with its key, its headers due within `timeouts.headersMs`; a
 * redirect is an error, never followed. `bounded(read)` waits for one read of the body for at most
 * `timeouts.stallMs`: past it the request is aborted and the read fails.
 */
async function registryFetch(
  url: URL,
  key: string | undefined,
  what: string,
  timeouts: RegistryTimeouts,
): Promise<{ res: Response; bounded: <T>(read: Promise<T>) => Promise<T> }> {
  const abort = new AbortController();
  const due = (ms: number, why: string) => {
    const timer = setTimeout(() => abort.abort(new RegistryUnreachable(`${why} for ${what} in ${ms / 1000} s`)), ms);
    return () => clearTimeout(timer);
  };
  const disarm = due(timeouts.headersMs, 'the registry did not answer');
  const res = await fetch(url, {
    headers: key ? { authorization: `Bearer ${key}` } : {},
    redirect: 'manual',
    signal: abort.signal,
  })
    .catch((e: Error) => {
      if (abort.signal.reason instanceof RegistryUnreachable) throw abort.signal.reason;
      throw new RegistryUnreachable(`the registry could not be reached for ${what} (${e.name})`, { cause: e });
    })
    .finally(disarm);
  if (res.status >= 300 && res.status < 400) {
    await res.body?.cancel();
    throw new BlobFetchError(`the registry answered a redirect (HTTP ${res.status}) for ${what}: not followed`);
  }
  const bounded = <T>(read: Promise<T>) =>
    read
      .catch((e: Error) => {
        throw abort.signal.reason instanceof RegistryUnreachable ? abort.signal.reason : e;
      })
      .finally(due(timeouts.stallMs, 'the registry stopped sending'));
  return { res, bounded };
}

/**
 * The scopes of the node's registry key (`GET /v1/whoami`). A node downloads only: a key that can
 * write (publish, admin) is refused, so that a compromised node cannot change what others serve.
 */
export async function checkReadOnlyKey(registryUrl: string, key: string): Promise<void> {
  const refuse = (why: string) => new BlobFetchError(`cannot use the registry key: ${why}`);
  const whoami = new URL('/v1/whoami', registryUrl);
  const { res, bounded } = await registryFetch(whoami, key, 'GET /v1/whoami', REGISTRY_TIMEOUTS).catch((e: Error) => {
    throw refuse(e.message);
  });
  if (!res.ok) {
    await res.body?.cancel();
    throw refuse(`the registry answered HTTP ${res.status} to GET /v1/whoami`);
  }
  let scopes: unknown;
  try {
    scopes = JSON.parse(
      new TextDecoder().decode(await readAtMost(res.body, 64 * 1024, 'GET /v1/whoami', bounded)),
    ).scopes;
  } catch (e) {
    throw refuse(`GET /v1/whoami did not answer its scopes (${(e as Error).message})`);
  }
  if (!Array.isArray(scopes)) throw refuse('GET /v1/whoami did not answer its scopes');
  const more = scopes.map(String).filter((s) => s !== 'read');
  if (more.length)
    throw refuse(
      `it has the scope${more.length > 1 ? 's' : ''} ${more.join(', ')}; a compute node takes a read-only key`,
    );
}

/**
 * A body's bytes, refused once it passes `limit` (the size the manifest says): whatever a store or
 * registry sends, the node holds no more than that before hashing it. `bounded` (registryFetch)
 * bounds the wait for each read.
 */
async function readAtMost(
  body: ReadableStream<Uint8Array> | null,
  limit: number,
  what: string,
  bounded: <T>(read: Promise<T>) => Promise<T> = (read) => read,
): Promise<Uint8Array> {
  if (!body) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = body.getReader();
  for (;;) {
    const { value, done } = await bounded(reader.read());
    if (done) break;
    total += value.length;
    if (total > limit) {
      await reader.cancel(); // nothing more is read
      throw new BlobFetchError(`${what} is larger than the ${limit} bytes its manifest says`);
    }
    chunks.push(value);
  }
  // Its own buffer (not Node's shared pool): the engine client transfers it to the engine thread.
  const out = new Uint8Array(total);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
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
