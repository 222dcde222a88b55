import { DEFAULT_NODE_TIMEOUTS, NodePool } from '../routing/nodes.ts';

/** How the edge reaches compute nodes and what it allows; from the entry (env vars) or a test. */
export interface GenerationConfig {
  /** Compute-node URLs by base model name; "*" serves any base. */
  nodes: Record<string, string[]>;
  /** The compute nodes' shared token (`VERSA_COMPUTE_TOKEN`), sent on every call to them. */
  computeToken?: string;
  /** Largest max_tokens a request may ask for. */
  maxTokens: number;
  /** Requests per minute per API key (0 = unlimited). */
  rateLimitPerMinute: number;
  /** Generations running at once per API key (0 = unlimited). */
  concurrencyPerKey: number;
  /** Give up on a generation after this long. */
  deadlineMs: number;
  /** Towards compute nodes (see NodeTimeouts): a probe's answer, the first token, each next token. */
  connectTimeoutMs: number;
  firstByteTimeoutMs: number;
  idleTimeoutMs: number;
  /** Active health checks (/readyz) of every node, at most one round per this (0 = off). */
  healthCheckMs: number;
}

export const DEFAULT_GENERATION: GenerationConfig = {
  nodes: {},
  maxTokens: 4096,
  rateLimitPerMinute: 600,
  concurrencyPerKey: 32,
  deadlineMs: 120_000,
  connectTimeoutMs: DEFAULT_NODE_TIMEOUTS.connectMs,
  firstByteTimeoutMs: DEFAULT_NODE_TIMEOUTS.firstByteMs,
  idleTimeoutMs: DEFAULT_NODE_TIMEOUTS.idleMs,
  healthCheckMs: 5000,
};

/**
 * Parses COMPUTE_NODES: a JSON object {"BASE": ["http://..."]}, a JSON array of URLs or a
 * comma-separated list of them (nodes that all serve any base). Throws one line on a bad value.
 */
export function parseComputeNodes(value: string | undefined): Record<string, string[]> {
  const text = value?.trim();
  if (!text) return {};
  let parsed: unknown = text
    .split(',')
    .map((u) => u.trim())
    .filter(Boolean);
  if (text.startsWith('{') || text.startsWith('[')) {
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new Error('COMPUTE_NODES is not valid JSON (expected ["http://host:port", ...] or {"BASE": [...]})');
    }
  }
  const byBase = Array.isArray(parsed) ? { '*': parsed } : (parsed as Record<string, unknown>);
  return Object.fromEntries(
    Object.entries(byBase).map(([base, urls]) => [base, (Array.isArray(urls) ? urls : [urls]).map(nodeUrl)]),
  );
}

/** A compute node's base URL (http or https, no query), without a trailing slash. */
function nodeUrl(value: unknown): string {
  const text = typeof value === 'string' ? value.trim() : '';
  let url: URL | undefined;
  try {
    url = new URL(text);
  } catch {
    url = undefined;
  }
  if (!url || !/^https?:$/.test(url.protocol) || url.search || url.hash || url.username)
    throw new Error(`COMPUTE_NODES: ${JSON.stringify(value)} is not an http(s) URL of a compute node`);
  return trimSlash(text);
}

const trimSlash = (u: string) => u.replace(/\/+$/, '');

/** One NodePool per base (kept per isolate, so passive health marks persist between requests). */
export class Pools {
  private readonly pools = new Map<string, NodePool>();
  private readonly nodes: Record<string, string[]>;
  constructor(private readonly config: GenerationConfig) {
    this.nodes = config.nodes;
  }

  for(base: string): NodePool {
    const urls = this.nodes[base] ?? this.nodes['*'] ?? [];
    const key = this.nodes[base] ? base : '*';
    let pool = this.pools.get(key);
    if (!pool) this.pools.set(key, (pool = new NodePool(urls, this.poolOptions())));
    return pool;
  }

  all(): NodePool[] {
    return Object.keys(this.nodes).map((base) => this.for(base));
  }

  /** Healthy nodes out of all, over every base (no addresses: /healthz is public). */
  summary(): { healthy: number; total: number } {
    const counts = this.all().map((p) => p.summary());
    return { healthy: counts.reduce((a, c) => a + c.healthy, 0), total: counts.reduce((a, c) => a + c.total, 0) };
  }

  private poolOptions() {
    const c = this.config;
    return {
      timeouts: { connectMs: c.connectTimeoutMs, firstByteMs: c.firstByteTimeoutMs, idleMs: c.idleTimeoutMs },
      healthEveryMs: c.healthCheckMs,
      token: c.computeToken,
    };
  }
}
