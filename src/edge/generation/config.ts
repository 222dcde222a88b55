import { DEFAULT_NODE_TIMEOUTS } from '../routing/nodes.ts';
import type { PoolSettings } from '../routing/pools.ts';
import { DEFAULT_REGISTRY_CACHE_MS } from './cache.ts';

/**
 * What the edge allows, and how it reaches compute nodes (PoolSettings: the nodes, their token, the
 * node timeouts and health checks, by the routing's names); from the entry (env vars) or a test.
 */
export interface GenerationConfig extends PoolSettings {
  /** Largest max_tokens a request may ask for. */
  maxTokens: number;
  /** Requests per minute per API key (0 = unlimited). */
  rateLimitPerMinute: number;
  /** Feedback and metric events per minute per API key (a metrics call counts each; 0 = unlimited). */
  eventRateLimitPerMinute: number;
  /** Generations running at once per API key (0 = unlimited). */
  concurrencyPerKey: number;
  /** Give up on a generation after this long. */
  deadlineMs: number;
  /**
   * How long registry answers on the path to the first token (key, model resolution) are reused at
   * most, for writes made elsewhere; writes through this process are seen at once (0 = no cache).
   */
  registryCacheMs: number;
}

export const DEFAULT_GENERATION: GenerationConfig = {
  nodes: {},
  maxTokens: 4096,
  rateLimitPerMinute: 600,
  eventRateLimitPerMinute: 60_000,
  concurrencyPerKey: 32,
  deadlineMs: 120_000,
  ...DEFAULT_NODE_TIMEOUTS,
  healthCheckMs: 5000,
  registryCacheMs: DEFAULT_REGISTRY_CACHE_MS,
};
