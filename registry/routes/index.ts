import type { OpenAPIHono } from '@hono/zod-openapi';
import type { RegistryEnv } from '../http.ts';
import { adapterRoutes } from './adapters.ts';
import { adminRoutes } from './admin.ts';
import { aliasRoutes } from './aliases.ts';
import { modelRoutes } from './models.ts';
import { publishRoutes } from './adapter-upload.ts';

/** Every registry route module; src/edge/app.ts mounts them (next to the generation and experiment routes). */
export function registryRoutes(): OpenAPIHono<RegistryEnv>[] {
  return [modelRoutes(), adapterRoutes(), publishRoutes(), aliasRoutes(), adminRoutes()];
}
