import { unitInterval } from '../experiments/assign.ts';

/**
 * Which compute node serves a request: rendezvous (highest-random-weight) hashing on the adapter
 * version, so each version keeps going to the same node (its adapter stays warm there) and adding
 * or removing a node only moves the versions that node wins or held. Nodes that failed recently
 * go to the back of the order; the rest of the order is the failover sequence.
 */
export class NodePool {
  private readonly downUntil = new Map<string, number>();

  constructor(
    readonly urls: readonly string[],
    private readonly opts: { downMs?: number; now?: () => number } = {},
  ) {}

  /** Nodes in the order to try for `key` (an adapter version id, or the base model's name). */
  async order(key: string): Promise<string[]> {
    const now = this.opts.now?.() ?? Date.now();
    const scored = await Promise.all(
      this.urls.map(async (url) => ({ url, score: await unitInterval(`${url}\u0000${key}`) })),
    );
    const healthy = (url: string) => (this.downUntil.get(url) ?? 0) <= now;
    return scored
      .sort((a, b) => Number(healthy(b.url)) - Number(healthy(a.url)) || b.score - a.score)
      .map((s) => s.url);
  }

  /** Passive health: a node that failed is skipped (tried last) for a while. */
  markDown(url: string): void {
    this.downUntil.set(url, (this.opts.now?.() ?? Date.now()) + (this.opts.downMs ?? 10_000));
  }

  markUp(url: string): void {
    this.downUntil.delete(url);
  }

  isDown(url: string): boolean {
    return (this.downUntil.get(url) ?? 0) > (this.opts.now?.() ?? Date.now());
  }

  /** Active health check of every node (/readyz); on Node it runs on a timer, on Workers per request batch. */
  async check(timeoutMs = 2000): Promise<Record<string, boolean>> {
    const results = await Promise.all(
      this.urls.map(async (url) => {
        try {
          const res = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(timeoutMs) });
          return [url, res.ok] as const;
        } catch {
          return [url, false] as const;
        }
      }),
    );
    for (const [url, ok] of results) {
      if (ok) this.markUp(url);
      else this.markDown(url);
    }
    return Object.fromEntries(results);
  }
}
