import { OpenAPIHono } from '@hono/zod-openapi';
import type { RegistryEnv } from '../../../registry/http.ts';
import { validationHook } from '../../http/middleware.ts';
import { manageRoutes } from './manage.ts';
import { outcomeRoutes, type OutcomeDeps } from './outcomes.ts';

/** Every experiment route, mounted once by the app (src/edge/app.ts). */
export function experimentRoutes(deps: OutcomeDeps): OpenAPIHono<RegistryEnv> {
  const app = new OpenAPIHono<RegistryEnv>({ defaultHook: validationHook });
  app.route('/', manageRoutes());
  app.route('/', outcomeRoutes(deps));
  return app;
}
