import type { Context } from 'hono';
import { ApiError } from '../../http/errors.ts';

/**
 * Requests per minute per API key: a token bucket refilled continuously. In a Worker it is per
 * isolate (Cloudflare's rate-limiting binding is the global alternative); on Node, per process.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    readonly perMinute: number,
    private readonly now: () => number = () => Date.now(),
  ) {}

  /**
   * Takes `cost` (one request, or a call's events) from the key's bucket; returns the seconds to wait
   * when it holds less. A cost above a minute's worth takes a full bucket, so it passes once a minute.
   */
  take(key: string, cost = 1): { ok: true } | { ok: false; retryAfter: number } {
    if (this.perMinute <= 0) return { ok: true };
    const need = Math.min(cost, this.perMinute);
    const now = this.now();
    const b = this.buckets.get(key) ?? { tokens: this.perMinute, at: now };
    b.tokens = Math.min(this.perMinute, b.tokens + ((now - b.at) / 60_000) * this.perMinute);
    b.at = now;
    this.buckets.set(key, b);
    if (b.tokens < need) return { ok: false, retryAfter: Math.ceil(((need - b.tokens) * 60) / this.perMinute) };
    b.tokens -= need;
    return { ok: true };
  }
}

/** Takes `cost` from the key's bucket, or throws 429 `rate_limit_exceeded` with Retry-After (set on `c`). */
export function takeOrRefuse(c: Context, limiter: RateLimiter, key: string, what: string, cost = 1): void {
  const taken = limiter.take(key, cost);
  if (taken.ok) return;
  c.header('retry-after', String(taken.retryAfter));
  throw new ApiError(
    429,
    `rate limit of ${limiter.perMinute} ${what} per minute exceeded for this key`,
    'rate_limit_exceeded',
  );
}

/** Generations running at once per API key (per isolate or process, like the rate limit). */
export class ConcurrencyLimiter {
  private readonly running = new Map<string, number>();

  constructor(private readonly perKey: number) {}

  /** Takes a slot for `key`: its release, or null when the key is at its limit. */
  acquire(key: string): (() => void) | null {
    const n = this.running.get(key) ?? 0;
    if (this.perKey > 0 && n >= this.perKey) return null;
    this.running.set(key, n + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.running.get(key) ?? 1) - 1;
      if (left > 0) this.running.set(key, left);
      else this.running.delete(key);
    };
  }
}
