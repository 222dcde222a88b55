import type { Context } from 'hono';
import { DEFAULT_GENERATION, type GenerationConfig } from './config.ts';
import { Pools } from '../routing/pools.ts';
import { ConcurrencyLimiter, RateLimiter } from './rate-limit.ts';
import { EventLog } from '../../experiments/event-log.ts';
import { EdgeMetrics } from '../metrics.ts';
import { RegistryCache } from './cache.ts';

/** What the generation routes share across requests (per Worker isolate, or per Node process). */
export interface GenerationContext {
  config: GenerationConfig;
  pools: Pools;
  limiter: RateLimiter;
  /** Feedback and application metrics, per key (eventRateLimitPerMinute). */
  eventLimiter: RateLimiter;
  concurrency: ConcurrencyLimiter;
  /** Event writes: counts written and failed (never silently dropped). */
  events: EventLog;
  /** When each experiment's guardrails were last evaluated after a request (ms). */
  evaluatedAt: Map<string, number>;
  /** Requests, errors, latency and tokens per adapter version and arm (GET /metrics). */
  metrics: EdgeMetrics;
  /** Registry answers on the path to the first token (config.registryCacheMs; cleared on writes). */
  cache: RegistryCache;
  /** Finishes work after the response (events): waitUntil on Workers, a logged promise on Node. */
  defer(c: Context, work: Promise<unknown>): void;
}

export function generationContext(config: Partial<GenerationConfig> = {}): GenerationContext {
  const full = { ...DEFAULT_GENERATION, ...config };
  return {
    config: full,
    pools: new Pools(full),
    limiter: new RateLimiter(full.rateLimitPerMinute),
    eventLimiter: new RateLimiter(full.eventRateLimitPerMinute),
    concurrency: new ConcurrencyLimiter(full.concurrencyPerKey),
    events: new EventLog(),
    evaluatedAt: new Map(),
    metrics: new EdgeMetrics(),
    cache: new RegistryCache(full.registryCacheMs),
    defer(c, work) {
      const guarded = work.catch((e) => console.error('versa: deferred work failed:', e));
      let ctx: { waitUntil(p: Promise<unknown>): void } | undefined;
      try {
        ctx = c.executionCtx; // throws outside Workers
      } catch {
        ctx = undefined;
      }
      ctx?.waitUntil(guarded);
    },
  };
}
