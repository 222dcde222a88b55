import { OpenAPIHono } from '@hono/zod-openapi';
import type { AppEnv } from '../../../registry/http.ts';
import { validationHook } from '../../http/middleware.ts';
import { manageRoutes } from './manage.ts';
import { outcomeRoutes, type OutcomeDeps } from './outcomes.ts';

/** Every experiment route, mounted once by the app (src/edge/app.ts). */
export function experimentRoutes(deps: OutcomeDeps): OpenAPIHono<AppEnv> {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.route('/', manageRoutes());
  app.route('/', outcomeRoutes(deps));
  return app;
}
