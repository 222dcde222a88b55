import { ReadyBody, type NodeBase } from '../../protocol/compute.ts';
import { unitInterval } from '../../util/unit-interval.ts';

/**
 * How long the edge waits on a compute node, in milliseconds (see README, "Limits"): one name each,
 * from the setting (VERSA_NODE_CONNECT_TIMEOUT, in seconds) to the pool.
 */
export interface NodeTimeouts {
  /** A node must answer a probe (GET /readyz) within this: active health checks and liveness probes. */
  connectTimeoutMs: number;
  /**
   * A generation's headers (a node sends them with the first token) within this; past it the node
   * is probed, and one that does not answer is failed over (one that does has the request queued).
   */
  firstByteTimeoutMs: number;
  /** After the first token, each next line within this, or the stream ends with an error. */
  idleTimeoutMs: number;
}

export const DEFAULT_NODE_TIMEOUTS: NodeTimeouts = {
  connectTimeoutMs: 3000,
  firstByteTimeoutMs: 10_000,
  idleTimeoutMs: 20_000,
};

/** How the edge sends a request to a node: fetch's subset it uses (never following a redirect). */
export type NodeFetch = (url: string, init: NodeRequestInit) => Promise<NodeResponse>;

/**
 * What the edge reads of a node's answer: the part of fetch's Response it uses, with the body as
 * any async iterable of bytes (a web stream is one; node-http.ts hands over Node's own stream).
 * Leaving a body's iteration early (break, return, throw) gives up the rest: the transport drops it
 * (or, on Node, drains a little of it to keep the connection).
 */
export interface NodeResponse {
  readonly status: number;
  readonly ok: boolean;
  readonly headers: { get(name: string): string | null };
  readonly body: AsyncIterable<Uint8Array> | null;
}

/** Gives up an answer's body unread (see NodeResponse). */
async function discard(body: AsyncIterable<Uint8Array> | null): Promise<void> {
  await body?.[Symbol.asyncIterator]().return?.();
}

interface NodeRequestInit {
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  signal?: AbortSignal;
}

/**
 * The default transport, global fetch: a node answers itself, so a 3xx is a failure, never followed.
 * Its body, a web stream, is async iterable in Node and in workerd (the DOM's types do not say so).
 */
const globalFetch: NodeFetch = (url, init) =>
  fetch(url, { ...init, redirect: 'manual' }) as Promise<unknown> as Promise<NodeResponse>;

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
 * Which compute node serves a request: only nodes serving exactly the request's base version (the
 * sha256 of its files, which each node reports on /readyz), and among them rendezvous
 * (highest-random-weight) hashing on the adapter version, so each version keeps going to the same
 * node (its adapter stays warm there) and adding or removing a node only moves the versions that
 * node wins or held. Unhealthy nodes go to the back of the order (still a last resort); the rest of
 * the order is the failover sequence.
 */
export class NodePool {
  readonly timeouts: NodeTimeouts;
  private readonly downUntil = new Map<string, number>();
  /** Nodes whose last health check failed: out until a check (or a request) succeeds. */
  private readonly failedCheck = new Set<string>();
  private lastCheck = -Infinity;
  private checking: Promise<Record<string, boolean>> | undefined;
  /** The base each node said it serves at its last probe. */
  private readonly bases = new Map<string, NodeBase>();
  private readonly probing = new Map<string, Promise<boolean>>();
  /** How requests reach the nodes: global fetch, unless the entry point sets another (Node: keepAliveFetch). */
  transport: NodeFetch = globalFetch;

  constructor(
    readonly urls: readonly string[],
    private readonly opts: NodePoolOptions = {},
  ) {
    this.timeouts = { ...DEFAULT_NODE_TIMEOUTS, ...opts.timeouts };
  }

  private now(): number {
    return this.opts.now?.() ?? Date.now();
  }

  /** Nodes (of `among`, default all) in the order to try for `key` (an adapter version id, or the base's name). */
  async order(key: string, among: readonly string[] = this.urls): Promise<string[]> {
    if (among.length < 2) return [...among]; // nothing to order: no hashing on the path to the first token
    const scored = await Promise.all(
      among.map(async (url) => ({ url, score: await unitInterval(`${url}\u0000${key}`) })),
    );
    const healthy = (url: string) => !this.isDown(url);
    return scored
      .sort((a, b) => Number(healthy(b.url)) - Number(healthy(a.url)) || b.score - a.score)
      .map((s) => s.url);
  }

  /**
   * The nodes of `among` that serve the base whose files have this sha256, in the order to try for
   * `key`. A node not heard from yet is asked first (a request never goes to a node on trust): one
   * that is up at once, one that is down only when no other node serves the base.
   */
  async serving(sha256: string, key: string, among: readonly string[] = this.urls): Promise<string[]> {
    const matching = () => among.filter((url) => this.bases.get(url)?.sha256 === sha256);
    const unknown = among.filter((url) => !this.bases.has(url));
    await this.recheck(unknown.filter((url) => !this.isDown(url)));
    if (!matching().length) await this.recheck(unknown.filter((url) => this.isDown(url)));
    return this.order(key, matching());
  }

  /** Probes nodes, taking each in or out by its answer (a down one is not asked again on every request). */
  private async recheck(urls: readonly string[]): Promise<void> {
    await Promise.all(urls.map(async (url) => ((await this.probe(url)) ? this.markUp(url) : this.markDown(url))));
  }

  /** Whether a healthy node of `among` serves the base whose files have this sha256 (as last heard). */
  serves(sha256: string, among: readonly string[] = this.urls): boolean {
    return among.some((url) => !this.isDown(url) && this.bases.get(url)?.sha256 === sha256);
  }

  /** Asks every node not heard from yet (and not down) what it serves. */
  async learn(): Promise<void> {
    await this.recheck(this.urls.filter((url) => !this.bases.has(url) && !this.isDown(url)));
  }

  /** A node that answered it serves other weights than it said: asked again before it is used. */
  forget(url: string): void {
    this.bases.delete(url);
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

  /**
   * Whether the node answers its /readyz within the connect timeout; what it says it serves is kept
   * (one probe per node at a time: concurrent callers share it).
   */
  probe(url: string): Promise<boolean> {
    let probing = this.probing.get(url);
    if (!probing) {
      probing = this.readyz(url).finally(() => this.probing.delete(url));
      this.probing.set(url, probing);
    }
    return probing;
  }

  private async readyz(url: string): Promise<boolean> {
    try {
      const res = await this.transport(`${url}/readyz`, {
        headers: this.opts.token ? { authorization: `Bearer ${this.opts.token}` } : {},
        signal: AbortSignal.timeout(this.timeouts.connectTimeoutMs),
      });
      if (!res.ok) {
        await discard(res.body);
        return false;
      }
      const ready = ReadyBody.safeParse(await readJson(res, READY_MAX_BYTES));
      // A node that does not say what it serves (an older one) serves nothing here, though alive.
      if (ready.success) this.bases.set(url, ready.data.base);
      else this.bases.delete(url);
      return true;
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

const READY_MAX_BYTES = 64 * 1024;

/** A response's JSON, read up to `maxBytes` (a node's answer is small; a rogue one is not read further). */
export async function readJson(res: NodeResponse, maxBytes: number): Promise<unknown> {
  if (!res.body) return undefined;
  const chunks: Uint8Array[] = [];
  let bytes = 0;
  for await (const value of res.body) {
    bytes += value.length;
    if (bytes > maxBytes) throw new Error(`the answer is over ${maxBytes} bytes`); // leaving the loop cancels the rest
    chunks.push(value);
  }
  return JSON.parse(await new Blob(chunks as Uint8Array<ArrayBuffer>[]).text());
}
