import type { MiddlewareHandler } from 'hono';
import type { AppEnv } from '../env.ts';
import { authenticate } from '../../../registry/auth.ts';
import { principalMiddleware } from '../../http/middleware.ts';

/** How long the edge reuses what it read from the registry, unless told otherwise (GenerationConfig). */
export const DEFAULT_REGISTRY_CACHE_MS = 1000;

/**
 * Registry answers on the path to the first token (key -> principal, model string -> version and
 * experiment), kept per Node process or Worker isolate. The staleness bound: an answer is reused
 * for at most `ttlMs` after it was read; a write through this process's own routes (alias move,
 * yank, experiment change, key revocation, publish) drops every answer at once (clear()). Writes
 * elsewhere (another process or isolate, the CLI on the same database) are seen within `ttlMs`.
 * Failures and null answers (an unknown key) are never kept. ttlMs 0: nothing is kept.
 *
 * An answer asked for in the second half of its life is due for a re-read, which refreshDue() does
 * after the response's headers have left (the entry points call it): under steady traffic a
 * request never waits for the registry, and no answer served is older than `ttlMs`.
 */
export class RegistryCache {
  private readonly entries = new Map<string, { readAt: number; value: Promise<unknown> }>();
  /** Answers asked for past half their life, with how to read them again. */
  private readonly due = new Map<string, () => Promise<unknown>>();
  /** Counts clear()s: a re-read that began before one is dropped, not kept. */
  private generation = 0;

  constructor(
    readonly ttlMs: number = DEFAULT_REGISTRY_CACHE_MS,
    private readonly now: () => number = () => performance.now(),
    /** Past this many answers every one is dropped: memory stays bounded whatever the callers send. */
    private readonly maxEntries = 10_000,
  ) {}

  /** The answer kept for `key`, or `load()`'s (kept from the moment it is asked for). */
  get<T>(key: string, load: () => Promise<T>): Promise<T> {
    if (this.ttlMs <= 0) return load();
    const now = this.now();
    const kept = this.entries.get(key);
    if (kept && now - kept.readAt < this.ttlMs) {
      if (now - kept.readAt >= this.ttlMs / 2) this.due.set(key, load);
      return kept.value as Promise<T>;
    }
    if (this.entries.size >= this.maxEntries) this.clear();
    const value = load();
    this.entries.set(key, { readAt: now, value });
    const forget = () => {
      if (this.entries.get(key)?.value === value) this.entries.delete(key);
    };
    value.then((v) => v ?? forget(), forget);
    return value;
  }

  /**
   * Reads again the answers due (see the class): a new answer replaces the kept one, a null one
   * (a key revoked since) drops it, a failure leaves it to expire. Never on the path to a first token.
   */
  async refreshDue(): Promise<void> {
    const due = [...this.due];
    this.due.clear();
    const generation = this.generation;
    await Promise.all(
      due.map(async ([key, load]) => {
        const readAt = this.now();
        const value = load();
        const read = await value.then(
          (answer) => ({ answer }),
          () => undefined,
        );
        const kept = this.entries.get(key);
        if (!read || this.generation !== generation || (kept && kept.readAt >= readAt)) return; // failed, or older
        if (read.answer == null) this.entries.delete(key);
        else this.entries.set(key, { readAt, value });
      }),
    );
  }

  /** Drops every answer: after a write through this process, the next request reads the registry. */
  clear(): void {
    this.entries.clear();
    this.due.clear();
    this.generation++;
  }

  get size(): number {
    return this.entries.size;
  }
}

/** The caller from its bearer key, through the cache (a revoked key is refused after clear() or ttlMs). */
export function cachedPrincipal(cache: RegistryCache): MiddlewareHandler<AppEnv> {
  return principalMiddleware<AppEnv>((c, key) =>
    cache.get(`key\u0000${key}`, () => authenticate(c.get('deps').registry, key)),
  );
}

/**
 * Clears the cache after every write through this app (whatever its answer: a failed write may have
 * changed something too), generation requests (`unless`) excepted: what a write changes is served
 * from the next request on.
 */
export function invalidateOnWrite(cache: RegistryCache, unless: readonly string[]): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    try {
      await next();
    } finally {
      if (c.req.method !== 'GET' && c.req.method !== 'HEAD' && !unless.includes(c.req.path)) cache.clear();
    }
  };
}
