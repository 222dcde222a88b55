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

/** How work outlives its request's response: a Worker hands it to waitUntil; on Node a promise runs on by itself. */
type Outlive = (c: Context, work: Promise<unknown>) => void;

/** The Worker's Outlive (its entry passes it): the request's ExecutionContext keeps it running. */
export const waitUntil: Outlive = (c, work) => c.executionCtx.waitUntil(work);

export function generationContext(
  config: Partial<GenerationConfig> = {},
  outlive: Outlive = () => {},
): GenerationContext {
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
    // Said by the entry, not found out per request: hono's executionCtx throws where there is none,
    // and the Error's stack cost 20-30 us of the edge's path to the first token on Node.
    defer: (c, work) =>
      outlive(
        c,
        work.catch((e) => console.error('versa: deferred work failed:', e)),
      ),
  };
}
