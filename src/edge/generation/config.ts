import { NodePool } from '../routing/nodes.ts';

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
}

export const DEFAULT_GENERATION: GenerationConfig = {
  nodes: {},
  maxTokens: 4096,
  rateLimitPerMinute: 600,
  concurrencyPerKey: 32,
  deadlineMs: 120_000,
};

/**
 * Parses COMPUTE_NODES: a JSON object {"BASE": ["http://..."]} or a comma-separated list of URLs
 * (nodes that all serve the same, any, base).
 */
export function parseComputeNodes(value: string | undefined): Record<string, string[]> {
  const text = value?.trim();
  if (!text) return {};
  if (text.startsWith('{')) {
    const parsed = JSON.parse(text) as Record<string, string | string[]>;
    return Object.fromEntries(
      Object.entries(parsed).map(([base, urls]) => [base, (Array.isArray(urls) ? urls : [urls]).map(trimSlash)]),
    );
  }
  return {
    '*': text
      .split(',')
      .map((u) => trimSlash(u.trim()))
      .filter(Boolean),
  };
}

const trimSlash = (u: string) => u.replace(/\/+$/, '');

/** One NodePool per base (kept per isolate, so passive health marks persist between requests). */
export class Pools {
  private readonly pools = new Map<string, NodePool>();
  constructor(private readonly nodes: Record<string, string[]>) {}

  for(base: string): NodePool {
    const urls = this.nodes[base] ?? this.nodes['*'] ?? [];
    const key = this.nodes[base] ? base : '*';
    let pool = this.pools.get(key);
    if (!pool) this.pools.set(key, (pool = new NodePool(urls)));
    return pool;
  }

  all(): NodePool[] {
    return Object.keys(this.nodes).map((base) => this.for(base));
  }
}
