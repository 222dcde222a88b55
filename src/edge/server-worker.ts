import type { D1Database, ExecutionContext, R2Bucket, ScheduledController } from '@cloudflare/workers-types/index.ts';
import { installOperatorKey } from '../../registry/auth.ts';
import { R2BlobStore } from '../../registry/blobs/r2.ts';
import { D1RoundTrips, d1Registry } from '../../registry/db/d1.ts';
import { digestStreamHasher } from '../../registry/hash.ts';
import { sweepOrphans } from '../../registry/sweep.ts';
import { createApp, type AppDeps } from './app.ts';
import { embeddedDashboard } from './ui/embedded.ts';
import { parseComputeNodes } from './routing/pools.ts';
import { generationContext, waitUntil } from './generation/context.ts';
import { metricsToken } from './metrics.ts';
import { nodeSettingsFrom } from './routing/settings.ts';

/**
 * Cloudflare Worker entry: bindings DB (D1) and BLOBS (R2) from wrangler.toml. Optional secret
 * VERSA_API_KEY is installed as an admin key of tenant "default" (how a fresh deployment gets its
 * first key). Nothing here may import a node-only module.
 */
export interface Env {
  DB: D1Database;
  BLOBS: R2Bucket;
  VERSA_API_KEY?: string;
  /** JSON {"BASE": ["https://node..."]} or a comma-separated list of compute-node URLs. */
  COMPUTE_NODES?: string;
  /** "1": allow plain http to compute nodes on public addresses (refused otherwise). */
  VERSA_ALLOW_PLAINTEXT_NODES?: string;
  /** The compute nodes' shared token (a secret: `wrangler secret put VERSA_COMPUTE_TOKEN`). */
  VERSA_COMPUTE_TOKEN?: string;
  /** The bearer token of GET /metrics for a scraper (a secret: `wrangler secret put VERSA_METRICS_TOKEN`). */
  VERSA_METRICS_TOKEN?: string;
  /** Requests per minute per API key (default 600; 0 = off). */
  RATE_LIMIT_PER_MINUTE?: string;
  /** Feedback and metric events per minute per API key (default 60,000; 0 = off). */
  EVENT_RATE_LIMIT_PER_MINUTE?: string;
  MAX_TOKENS?: string;
  /** Seconds (vars): a node's probe answer, its first token, each next token; health-check interval. */
  VERSA_NODE_CONNECT_TIMEOUT?: string;
  VERSA_NODE_FIRST_BYTE_TIMEOUT?: string;
  VERSA_NODE_IDLE_TIMEOUT?: string;
  VERSA_NODE_HEALTH_INTERVAL?: string;
  /** Seconds a registry answer (key, model string) is reused at most (default 1; 0 = off). */
  VERSA_REGISTRY_CACHE_TTL?: string;
  /** "1" (tests, `versa bench edge --worker`): each response says its D1 round trips (see countedFetch). */
  VERSA_COUNT_D1?: string;
}

function depsFrom(env: Env, db: D1Database): AppDeps {
  const hasher = digestStreamHasher();
  if (!hasher) throw new Error('crypto.DigestStream is missing: not a Workers runtime?');
  const generation: AppDeps['generation'] = {
    nodes: parseComputeNodes(env),
    computeToken: env.VERSA_COMPUTE_TOKEN || undefined,
    ...nodeSettingsFrom(env),
  };
  if (env.RATE_LIMIT_PER_MINUTE) generation.rateLimitPerMinute = Number(env.RATE_LIMIT_PER_MINUTE);
  if (env.EVENT_RATE_LIMIT_PER_MINUTE) generation.eventRateLimitPerMinute = Number(env.EVENT_RATE_LIMIT_PER_MINUTE);
  if (env.MAX_TOKENS) generation.maxTokens = Number(env.MAX_TOKENS);
  return {
    registry: d1Registry(db),
    blobs: new R2BlobStore(env.BLOBS, { hasher }),
    generationContext: generationContext(generation, waitUntil),
    metricsToken: metricsToken(env.VERSA_METRICS_TOKEN),
    ui: embeddedDashboard,
  };
}

// Bindings do not change within an isolate: build the app once, on the first request.
let built: { app: ReturnType<typeof createApp>; deps: AppDeps; d1?: D1RoundTrips } | undefined;
let keyInstalled: Promise<unknown> | undefined;

function appFor(env: Env) {
  if (!built) {
    const d1 = env.VERSA_COUNT_D1 === '1' ? new D1RoundTrips(env.DB) : undefined;
    const deps = depsFrom(env, d1?.binding ?? env.DB);
    built = { app: createApp(deps), deps, d1 };
  }
  return built;
}

const refreshDue = () => built!.deps.generationContext!.cache.refreshDue();

// How many pieces of work (waitUntil) earlier requests left running, while D1 round trips are counted.
let deferred = 0;

/**
 * The app's answer with `x-versa-d1-queries`: the D1 round trips made from the request's arrival to
 * its response's headers (for a generation, its first token is there). Deferred work (event writes,
 * re-reads of cached answers) does not count: each request first waits until what earlier ones
 * deferred is done (polling a count: a Worker may not await another request's promises), so counts
 * never mix, for requests sent one at a time (a test or bench switch, not for serving).
 */
async function countedFetch(
  app: ReturnType<typeof createApp>,
  d1: D1RoundTrips,
  request: Request,
  env: Env,
  ctx: ExecutionContext,
) {
  for (let waited = 0; deferred > 0 && waited < 10_000; waited += 5) await new Promise((r) => setTimeout(r, 5));
  // What the app uses of its context (hono: waitUntil), with deferred work counted.
  const tracked = {
    waitUntil(work: Promise<unknown>) {
      deferred++;
      ctx.waitUntil(work.finally(() => deferred--));
    },
    passThroughOnException: () => ctx.passThroughOnException(),
    props: ctx.props,
  } as ExecutionContext;
  const before = d1.count;
  const res = await app.fetch(request, env, tracked);
  const headers = new Headers(res.headers);
  headers.set('x-versa-d1-queries', String(d1.count - before));
  tracked.waitUntil(refreshDue());
  return new Response(res.body, { status: res.status, statusText: res.statusText, headers });
}

export default {
  async fetch(request: Request, env: Env, ctx: ExecutionContext): Promise<Response> {
    const { app, deps, d1 } = appFor(env);
    // Workers have no timers: requests run the active health checks, at most one round per interval.
    for (const pool of deps.generationContext!.pools.all()) ctx.waitUntil(pool.checkIfDue());
    if (env.VERSA_API_KEY) {
      keyInstalled ??= installOperatorKey(deps.registry, env.VERSA_API_KEY, 'VERSA_API_KEY').catch((e) => {
        keyInstalled = undefined; // try again on the next request
        throw e;
      });
      await keyInstalled;
    }
    if (d1) return countedFetch(app, d1, request, env, ctx);
    const res = await app.fetch(request, env, ctx);
    ctx.waitUntil(refreshDue()); // the registry answers due for a re-read, once the headers are out
    return res;
  },

  async scheduled(_controller: ScheduledController, env: Env, ctx: ExecutionContext): Promise<void> {
    const { deps } = appFor(env);
    ctx.waitUntil(sweepOrphans(deps.registry.db, deps.blobs).then((r) => console.log('versa: swept', r)));
  },
};
