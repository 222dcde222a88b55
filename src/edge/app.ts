import { OpenAPIHono } from '@hono/zod-openapi';
import { DEFAULT_LIMITS, type Limits, type RegistryDeps } from '../../registry/http.ts';
import type { AppEnv } from './env.ts';
import { errorResponse, limitBody, refuseKeylessBody, validationHook } from '../http/middleware.ts';
import { errorBody } from '../http/errors.ts';
import { registryRoutes } from '../../registry/routes/index.ts';
import { isAdapterUpload } from '../../registry/routes/adapter-upload.ts';
import type { GenerationConfig } from './generation/config.ts';
import { generationContext, type GenerationContext } from './generation/context.ts';
import { GENERATION_PATHS, generationRoutes } from './generation/routes.ts';
import { takeOrRefuse } from './generation/rate-limit.ts';
import { experimentRoutes } from '../experiments/routes/index.ts';
import { serverTiming, timedMiddleware } from './generation/timing.ts';
import { cachedPrincipal, invalidateOnWrite } from './generation/cache.ts';
import { uiRoutes, type UiAssets } from './ui/routes.ts';
import { metricsRoutes } from './metrics.ts';

export type { AppEnv } from './env.ts';

/** What the app is built from. Entries (Worker, Node) and tests inject these; nothing is global. */
export interface AppDeps extends Omit<RegistryDeps, 'now' | 'limits'> {
  now?: () => Date;
  limits?: Partial<Limits>;
  /** Compute nodes and generation limits (the OpenAI-compatible routes). */
  generation?: Partial<GenerationConfig>;
  /** The generation routes' shared state, when the entry keeps a handle on it (to run health checks). */
  generationContext?: GenerationContext;
  /** The bearer token a scraper sends for GET /metrics (VERSA_METRICS_TOKEN); operator API keys work too. */
  metricsToken?: string;
  /** The dashboard's built files: in the Worker's bundle (ui/embedded.ts), or dist/ui/ on Node (staticFolder). */
  ui?: UiAssets;
}

/**
 * The whole public HTTP surface as ONE Hono app: the registry routes, the OpenAI-compatible
 * generation routes, the experiments (src/experiments) and the dashboard (route modules, mounted in
 * `routeModules`). Runs unchanged
 * in a Worker and on Node.
 */
export function createApp(deps: AppDeps): OpenAPIHono<AppEnv> {
  const { generation: _generation, generationContext: _context, metricsToken, ui, ...registryDeps } = deps;
  const gen = deps.generationContext ?? generationContext(deps.generation);
  const resolved: RegistryDeps = {
    ...registryDeps,
    now: deps.now ?? (() => new Date()),
    limits: { ...DEFAULT_LIMITS, ...deps.limits },
    servable: () => gen.pools.servable(), // GET /v1/models says which bases the compute nodes serve now
  };
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });

  app.use('*', async (c, next) => {
    c.set('deps', resolved);
    await next();
  });
  // Liveness for load balancers and `versa edge` users: no key, no addresses, only counts.
  app.get('/healthz', (c) => c.json({ status: 'ok', compute_nodes: gen.pools.summary() }));
  // The key first, from the headers alone: a body without a valid key is refused unread (401).
  // Server-Timing of the generation path (x-versa-timing: 1, operator keys), the key's lookup included.
  for (const path of GENERATION_PATHS) app.use(path, serverTiming());
  app.use('/v1/*', timedMiddleware('auth', cachedPrincipal(gen.cache)));
  // Key and model answers are cached (registryCacheMs): any write through this app drops them at once.
  app.use('*', invalidateOnWrite(gen.cache, GENERATION_PATHS));
  app.use('*', refuseKeylessBody());
  // Then every body is bounded, chosen by route (never by content type): only the adapter upload
  // streams, under its own limits.
  const limitJson = limitBody<AppEnv>({
    maxSize: resolved.limits.maxJsonBytes,
    onError: (c) =>
      c.json(errorBody(413, `request body over ${resolved.limits.maxJsonBytes} bytes`, 'payload_too_large'), 413),
  });
  app.use('*', (c, next) => (isAdapterUpload(c.req.method, c.req.path) ? next() : limitJson(c, next)));

  const routeModules = [
    ...registryRoutes(),
    generationRoutes(gen),
    experimentRoutes({
      events: gen.events,
      limitEvents: (c, key, count) => takeOrRefuse(c, gen.eventLimiter, key, 'feedback and metric events', count),
    }),
    uiRoutes(ui),
    metricsRoutes(gen.metrics, metricsToken),
  ];
  for (const module of routeModules) app.route('/', module);

  app.openAPIRegistry.registerComponent('securitySchemes', 'bearer', {
    type: 'http',
    scheme: 'bearer',
    description: 'API key: `Authorization: Bearer vsk_...`',
  });
  app.doc31('/openapi.json', {
    openapi: '3.1.0',
    info: {
      title: 'Versa',
      version: '0.1.0',
      description:
        'Registry of versioned base models and adapters, and OpenAI-compatible generation, from one language model.',
    },
  });

  app.notFound((c) =>
    c.json(errorBody(404, `no route for ${c.req.method} ${new URL(c.req.url).pathname}`, 'route_not_found'), 404),
  );
  app.onError(errorResponse);
  return app;
}
