import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { HttpBindings } from '@hono/node-server';
import { listen } from '../http/listen.ts';
import { staticFolder } from '../http/static-folder.ts';
import { installOperatorKey } from '../../registry/auth.ts';
import { FolderBlobStore } from '../../registry/blobs/folder.ts';
import { sqliteRegistry, type SqliteRegistry } from '../../registry/db/sqlite.ts';
import type { Limits } from '../../registry/http.ts';
import { sweepOrphans, SWEEP_EVERY_MS } from '../../registry/sweep.ts';
import { createApp, type AppDeps } from './app.ts';
import { parseComputeNodes } from './routing/pools.ts';
import { generationContext } from './generation/context.ts';
import { metricsToken } from './metrics.ts';
import { keepAliveFetch } from './routing/node-http.ts';
import { nodeSettingsFrom } from './routing/settings.ts';
import type { UiAssets } from './ui/routes.ts';

/** The dashboard's bundle, as scripts/build.mjs writes it (`npm install` and `npm run build` do). */
export const dashboardAssets = (): UiAssets => staticFolder(fileURLToPath(new URL('../../dist/ui/', import.meta.url)));

/**
 * Node entry: the same app over SQLite (better-sqlite3, migrations applied at open) and a blob
 * folder, both under VERSA_HOME (default ./.versa): `<home>/registry.db`, `<home>/blobs/`. Compute
 * nodes come from COMPUTE_NODES and their settings from VERSA_NODE_* (see README), unless given.
 */
export interface NodeServerOptions {
  /** Default: env PORT, else 8787. 0 picks a free port. */
  port?: number;
  hostname?: string;
  /** Default: env VERSA_HOME, else ./.versa */
  home?: string;
  /** Register this key (e.g. VERSA_API_KEY) as an admin key of tenant "default". */
  apiKey?: string;
  limits?: Partial<Limits>;
  /** Extra app dependencies (the generation routes' later). */
  deps?: Partial<AppDeps>;
  /** Close connections idle this long (default 120 s). */
  idleTimeoutMs?: number;
}

export interface NodeServer {
  url: string;
  port: number;
  home: string;
  registry: SqliteRegistry;
  blobs: FolderBlobStore;
  app: ReturnType<typeof createApp>;
  close(): Promise<void>;
}

/** The registry's local storage under `home`, migrated and ready (no HTTP). */
export function openLocalRegistry(home: string): { registry: SqliteRegistry; blobs: FolderBlobStore } {
  return { registry: sqliteRegistry(resolve(home, 'registry.db')), blobs: new FolderBlobStore(resolve(home, 'blobs')) };
}

export async function startNodeServer(options: NodeServerOptions = {}): Promise<NodeServer> {
  const home = resolve(options.home ?? process.env.VERSA_HOME ?? '.versa');
  const port = options.port ?? Number(process.env.PORT ?? 8787);
  const hostname = options.hostname ?? '127.0.0.1';
  const scrapeToken = metricsToken(process.env.VERSA_METRICS_TOKEN); // checked before anything opens
  const { registry, blobs } = openLocalRegistry(home);
  if (options.apiKey) await installOperatorKey(registry, options.apiKey, 'admin');
  const generation = {
    ...nodeSettingsFrom(process.env), // the VERSA_NODE_* timeouts, unless the caller sets them
    ...(options.deps?.generation ?? {
      nodes: parseComputeNodes(process.env),
      computeToken: process.env.VERSA_COMPUTE_TOKEN || undefined,
    }),
  };
  const gen = options.deps?.generationContext ?? generationContext(generation);
  for (const pool of gen.pools.all()) pool.transport = keepAliveFetch(); // node:http: less work per request
  const app = createApp({
    registry,
    blobs,
    limits: options.limits,
    metricsToken: scrapeToken,
    ui: dashboardAssets(),
    ...options.deps,
    generationContext: gen,
  });
  // Active health checks: a frozen or stopped node is taken out before a request waits on it.
  const checkNodes = () => gen.pools.all().forEach((pool) => void pool.check());
  const health = gen.config.healthCheckMs > 0 ? setInterval(checkNodes, gen.config.healthCheckMs) : undefined;
  health?.unref();
  checkNodes();
  const sweep = () => sweepOrphans(registry.db, blobs).catch((e) => console.error('versa: sweep failed:', e));
  void sweep();
  const timer = setInterval(sweep, SWEEP_EVERY_MS);
  timer.unref();
  // Registry answers due for a re-read are read once the response's headers (and first token) are out.
  const answer = async (request: Request, env: HttpBindings) => {
    const res = await app.fetch(request, env);
    setImmediate(() => void gen.cache.refreshDue());
    return res;
  };
  const { server, port: actualPort } = await listen(answer, {
    port,
    hostname,
    idleTimeoutMs: options.idleTimeoutMs,
  });
  return {
    url: `http://${hostname}:${actualPort}`,
    port: actualPort,
    home,
    registry,
    blobs,
    app,
    close: async () => {
      clearInterval(timer);
      clearInterval(health);
      await new Promise<void>((done) => server.close(() => done()));
      registry.close();
    },
  };
}
