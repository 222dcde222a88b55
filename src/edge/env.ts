import type { HttpEnv } from '../http/middleware.ts';
import type { RegistryDeps } from '../../registry/http.ts';

/**
 * The edge app's Hono environment: the caller (set by authentication) and the deps every route
 * module shares. The registry's and the experiments' route modules are typed with RegistryEnv,
 * the same shape, so the app mounts them as they are.
 */
export type AppEnv = HttpEnv<RegistryDeps>;
