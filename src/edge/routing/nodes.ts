import { unitInterval } from '../experiments/assign.ts';

/** How long the edge waits on a compute node, in milliseconds (see README, "Limits"). */
export interface NodeTimeouts {
  /** A node must answer a probe (GET /readyz) within this: active health checks and liveness probes. */
  connectMs: number;
  /**
   * A generation's headers (a node sends them with the first token) within this; past it the node
   * is probed, and one that does not answer is failed over (one that does has the request queued).
   */
  firstByteMs: number;
  /** After the first token, each next line within this, or the stream ends with an error. */
  idleMs: number;
}

export const DEFAULT_NODE_TIMEOUTS: NodeTimeouts = { connectMs: 3000, firstByteMs: 10_000, idleMs: 20_000 };

export interface NodePoolOptions {
  /** How long a node that failed a request is tried last (passive health). */
  downMs?: number;
  now?: () => number;
  timeouts?: Partial<NodeTimeouts>;
  /** Active health checks: at most one round per this many ms (0: only when check() is called). */
  healthEveryMs?: number;
  /** The compute token, sent with the probes. */
  token?: string;
}

/**
 * Which compute node serves a request: rendezvous (highest-random-weight) hashing on the adapter
 * version, so each version keeps going to the same node (its adapter stays warm there) and adding
 * or removing a node only moves the versions that node wins or held. Unhealthy nodes go to the
 * back of the order (still a last resort); the rest of the order is the failover sequence.
 */
export class NodePool {
  readonly timeouts: NodeTimeouts;
  private readonly downUntil = new Map<string, number>();
  /** Nodes whose last health check failed: out until a check (or a request) succeeds. */
  private readonly failedCheck = new Set<string>();
  private lastCheck = -Infinity;
  private checking: Promise<Record<string, boolean>> | undefined;

  constructor(
    readonly urls: readonly string[],
    private readonly opts: NodePoolOptions = {},
  ) {
    this.timeouts = { ...DEFAULT_NODE_TIMEOUTS, ...opts.timeouts };
  }

  private now(): number {
    return this.opts.now?.() ?? Date.now();
  }

  /** Nodes in the order to try for `key` (an adapter version id, or the base model's name). */
  async order(key: string): Promise<string[]> {
    const scored = await Promise.all(
      this.urls.map(async (url) => ({ url, score: await unitInterval(`${url}\u0000${key}`) })),
    );
    const healthy = (url: string) => !this.isDown(url);
    return scored
      .sort((a, b) => Number(healthy(b.url)) - Number(healthy(a.url)) || b.score - a.score)
      .map((s) => s.url);
  }

  /** Passive health: a node that failed is skipped (tried last) for a while. */
  markDown(url: string): void {
    this.downUntil.set(url, this.now() + (this.opts.downMs ?? 10_000));
  }

  markUp(url: string): void {
    this.downUntil.delete(url);
    this.failedCheck.delete(url);
  }

  isDown(url: string): boolean {
    return this.failedCheck.has(url) || (this.downUntil.get(url) ?? 0) > this.now();
  }

  /** Healthy nodes out of all (no addresses: /healthz is public). */
  summary(): { healthy: number; total: number } {
    return { healthy: this.urls.filter((u) => !this.isDown(u)).length, total: this.urls.length };
  }

  /** Whether the node answers its /readyz within the connect timeout. */
  async probe(url: string): Promise<boolean> {
    try {
      const res = await fetch(`${url}/readyz`, {
        headers: this.opts.token ? { authorization: `Bearer ${this.opts.token}` } : {},
        signal: AbortSignal.timeout(this.timeouts.connectMs),
      });
      await res.body?.cancel();
      return res.ok;
    } catch {
      return false;
    }
  }

  /** Active health check of every node: a failing node is taken out, a recovered one back in. */
  check(): Promise<Record<string, boolean>> {
    this.lastCheck = this.now();
    this.checking ??= (async () => {
      try {
        const results = await Promise.all(this.urls.map(async (url) => [url, await this.probe(url)] as const));
        for (const [url, ok] of results) {
          if (ok) this.markUp(url);
          else this.failedCheck.add(url);
        }
        return Object.fromEntries(results);
      } finally {
        this.checking = undefined;
      }
    })();
    return this.checking;
  }

  /** A check if the last one is older than `healthEveryMs` (Workers have no timers: called per request). */
  async checkIfDue(): Promise<void> {
    const every = this.opts.healthEveryMs ?? 0;
    if (every > 0 && this.now() - this.lastCheck >= every) await this.check();
  }
}
