import { OpenAPIHono } from '@hono/zod-openapi';
import { bodyLimit } from 'hono/body-limit';
import { DEFAULT_LIMITS, registryPrincipal, type AppEnv, type Limits, type RegistryDeps } from '../../registry/http.ts';
import { errorResponse, validationHook } from '../http/middleware.ts';
import { errorBody } from '../http/errors.ts';
import { registryRoutes } from '../../registry/routes/index.ts';
import type { GenerationConfig } from './generation/config.ts';
import { generationContext, type GenerationContext } from './generation/context.ts';
import { generationRoutes } from './generation/routes.ts';
import { uiRoutes } from './ui/routes.ts';

export type { AppEnv } from '../../registry/http.ts';

/** What the app is built from. Entries (Worker, Node) and tests inject these; nothing is global. */
export interface AppDeps extends Omit<RegistryDeps, 'now' | 'limits'> {
  now?: () => Date;
  limits?: Partial<Limits>;
  /** Compute nodes and generation limits (the OpenAI-compatible routes). */
  generation?: Partial<GenerationConfig>;
  /** The generation routes' shared state, when the entry keeps a handle on it (to run health checks). */
  generationContext?: GenerationContext;
}

/**
 * The whole public HTTP surface as ONE Hono app: the registry routes, the OpenAI-compatible
 * generation routes and the dashboard (route modules, mounted in `routeModules`). Runs unchanged
 * in a Worker and on Node.
 */
export function createApp(deps: AppDeps): OpenAPIHono<AppEnv> {
  const { generation: _generation, generationContext: _context, ...registryDeps } = deps;
  const gen = deps.generationContext ?? generationContext(deps.generation);
  const resolved: RegistryDeps = {
    ...registryDeps,
    now: deps.now ?? (() => new Date()),
    limits: { ...DEFAULT_LIMITS, ...deps.limits },
  };
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });

  app.use('*', async (c, next) => {
    c.set('deps', resolved);
    await next();
  });
  // Liveness for load balancers and `versa edge` users: no key, no addresses, only counts.
  app.get('/healthz', (c) => c.json({ status: 'ok', compute_nodes: gen.pools.summary() }));
  // JSON bodies are small; only the publish route streams (it enforces its own limits).
  app.use('/v1/*', async (c, next) => {
    const type = c.req.header('content-type') ?? '';
    if (type.startsWith('multipart/')) return next();
    return bodyLimit({
      maxSize: resolved.limits.maxJsonBytes,
      onError: (c) =>
        c.json(errorBody(413, `request body over ${resolved.limits.maxJsonBytes} bytes`, 'payload_too_large'), 413),
    })(c, next);
  });
  app.use('/v1/*', registryPrincipal());

  const routeModules = [...registryRoutes(), generationRoutes(gen), uiRoutes()];
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
