import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { serve, type ServerType } from '@hono/node-server';
import type { D1Database, R2Bucket } from '@cloudflare/workers-types/index.ts';
import { createApiKey } from '../../registry/auth.ts';
import { FolderBlobStore } from '../../registry/blobs/folder.ts';
import { R2BlobStore } from '../../registry/blobs/r2.ts';
import type { BlobStore } from '../../registry/blobs/store.ts';
import { d1Registry } from '../../registry/db/d1.ts';
import type { RegistryDb } from '../../registry/db/index.ts';
import { sqliteRegistry } from '../../registry/db/sqlite.ts';
import { nodeHasher } from '../../registry/hash-node.ts';
import type { Limits } from '../../registry/http.ts';
import type { Scope } from '../../src/http/principal.ts';
import { createApp, type AppDeps } from '../../src/edge/app.ts';
import { dashboardAssets } from '../../src/edge/server-node.ts';

/**
 * Starts the registry app on a real HTTP port over either backend, for tests (the registry's and,
 * later, the edge's):
 *
 * - 'sqlite': better-sqlite3 file + blob folder in a temp dir (the Node default);
 * - 'd1': D1 + R2 from wrangler's local runtime (getPlatformProxy) in a temp persist dir, after
 *   `wrangler d1 migrations apply --local` applied migrations/ to it, exactly as in production.
 *
 * Either way the app is the same createApp(); `raw` runs SQL on the backend directly.
 */
export type Backend = 'sqlite' | 'd1';
export const BACKENDS: Backend[] = ['sqlite', 'd1'];

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

// Offline: no Request.cf download, no telemetry.
process.env.CLOUDFLARE_CF_FETCH_ENABLED = 'false';
process.env.WRANGLER_SEND_METRICS = 'false';

export interface StartOptions {
  limits?: Partial<Limits>;
  /** Wrap the blob store (e.g. to inject a storage failure). */
  wrapBlobs?: (blobs: BlobStore) => BlobStore;
  /** R2 part size (default 5 MiB, R2's minimum, so multipart paths are cheap to reach). */
  partBytes?: number;
  /** More app dependencies (e.g. for the generation routes). */
  deps?: Partial<AppDeps>;
}

export interface TestRegistry {
  backend: Backend;
  url: string;
  registry: RegistryDb;
  /** The store the app writes to (before any wrapBlobs). */
  blobs: BlobStore;
  adminKey: string;
  dir: string;
  /** Runs one SQL statement on the backend, bypassing drizzle. */
  raw(sql: string): Promise<void>;
  /** Partial uploads left in the store (should always be 0 once a request is over). */
  partials(): Promise<number>;
  /** Creates a key (creating the tenant if needed) and returns it. */
  key(tenant: string, scopes: Scope[], name?: string): Promise<string>;
  /** fetch against the server, with `key` as the bearer key if given. */
  fetch(path: string, init?: RequestInit & { key?: string | null }): Promise<Response>;
  close(): Promise<void>;
}

const run = promisify(execFile);

async function applyD1Migrations(persistTo: string): Promise<void> {
  await run(
    process.execPath,
    [
      join(REPO_ROOT, 'node_modules/wrangler/bin/wrangler.js'),
      'd1',
      'migrations',
      'apply',
      'DB',
      '--local',
      '--persist-to',
      persistTo,
    ],
    {
      cwd: REPO_ROOT,
      env: { ...process.env, CI: 'true', NO_COLOR: '1' },
    },
  );
}

export async function startRegistry(backend: Backend, options: StartOptions = {}): Promise<TestRegistry> {
  const dir = mkdtempSync(join(tmpdir(), `versa-registry-${backend}-`));
  let registry: RegistryDb;
  let blobs: BlobStore;
  let raw: (sql: string) => Promise<void>;
  let dispose: () => Promise<void>;
  let partials: () => Promise<number>;
  if (backend === 'sqlite') {
    const sqlite = sqliteRegistry(join(dir, 'registry.db'));
    registry = sqlite;
    blobs = new FolderBlobStore(join(dir, 'blobs'));
    raw = async (sql) => void sqlite.sqlite.exec(sql);
    partials = async () => readdirSync(join(dir, 'blobs', 'partial')).length;
    dispose = async () => sqlite.close();
  } else {
    await applyD1Migrations(dir);
    const { getPlatformProxy } = await import('wrangler');
    const proxy = await getPlatformProxy<{ DB: D1Database; BLOBS: R2Bucket }>({
      configPath: join(REPO_ROOT, 'wrangler.toml'),
      persist: { path: join(dir, 'v3') },
      remoteBindings: false,
    });
    registry = d1Registry(proxy.env.DB);
    blobs = new R2BlobStore(proxy.env.BLOBS, { hasher: nodeHasher, partBytes: options.partBytes ?? 5 * 1024 * 1024 });
    raw = async (sql) => void (await proxy.env.DB.prepare(sql).run());
    partials = async () => (await proxy.env.BLOBS.list({ prefix: 'partial/' })).objects.length;
    dispose = () => proxy.dispose();
  }
  const app = createApp({
    registry,
    blobs: options.wrapBlobs ? options.wrapBlobs(blobs) : blobs,
    limits: options.limits,
    ui: dashboardAssets(), // as the Node entry serves it (test/setup/build.ts builds it)
    ...options.deps,
  });
  const server: ServerType = await new Promise((ready) => {
    const s = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => ready(s));
  });
  const address = server.address();
  const url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  const admin = await createApiKey(registry, { tenant: 'acme', name: 'admin', scopes: ['admin', 'operator'] });
  return {
    backend,
    url,
    registry,
    blobs,
    adminKey: admin.key,
    dir,
    raw,
    partials: () => partials().catch(() => 0),
    key: async (tenant, scopes, name) =>
      (await createApiKey(registry, { tenant, scopes, name: name ?? scopes.join('+') })).key,
    fetch: (path, init = {}) => {
      const { key, ...rest } = init;
      const headers = new Headers(rest.headers);
      const bearer = key === undefined ? admin.key : key;
      if (bearer) headers.set('authorization', `Bearer ${bearer}`);
      return fetch(url + path, { ...rest, headers });
    },
    close: async () => {
      await new Promise<void>((done) => server.close(() => done()));
      await dispose();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface TestWorker {
  url: string;
  adminKey: string;
  dir: string;
  fetch(path: string, init?: RequestInit & { key?: string | null }): Promise<Response>;
  close(): Promise<void>;
}

/**
 * The real Worker (src/edge/server-worker.ts bundled by wrangler, run by workerd) on local D1 + R2 in a
 * temp persist dir with migrations applied. Its admin key comes in as the VERSA_API_KEY secret.
 */
export async function startWorkerRegistry(vars: Record<string, string> = {}): Promise<TestWorker> {
  const dir = mkdtempSync(join(tmpdir(), 'versa-worker-'));
  await applyD1Migrations(dir);
  const adminKey = `vsk_worker-admin-${Math.random().toString(36).slice(2)}-0000000000`;
  const { unstable_startWorker } = await import('wrangler');
  const worker = await unstable_startWorker({
    config: join(REPO_ROOT, 'wrangler.toml'),
    bindings: Object.fromEntries(
      Object.entries({ VERSA_API_KEY: adminKey, ...vars }).map(([k, value]) => [
        k,
        { type: 'plain_text' as const, value },
      ]),
    ),
    dev: {
      persist: dir,
      server: { hostname: '127.0.0.1', port: 0 },
      inspector: false,
      watch: false,
      // WRANGLER_LOG_LEVEL=debug shows workerd's own errors (an uncaught exception in the runtime).
      logLevel: (process.env.WRANGLER_LOG_LEVEL as 'error' | undefined) ?? 'error',
    },
  });
  await worker.ready;
  const url = (await worker.url).origin;
  return {
    url,
    adminKey,
    dir,
    fetch: (path, init = {}) => {
      const { key, ...rest } = init;
      const headers = new Headers(rest.headers);
      const bearer = key === undefined ? adminKey : key;
      if (bearer) headers.set('authorization', `Bearer ${bearer}`);
      return fetch(url + path, { ...rest, headers });
    },
    close: async () => {
      await worker.dispose();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A real blob store whose `put` fails while `failPut` returns an error: for the faults a test cannot
 * cause for real (storage that breaks mid-publish on R2, a full disk on D1's side).
 */
export class FaultInjectingBlobs implements BlobStore {
  failPut: () => Error | undefined = () => undefined;
  constructor(private readonly inner: BlobStore) {}
  async put(...args: Parameters<BlobStore['put']>) {
    const fault = this.failPut();
    if (fault) throw fault;
    return this.inner.put(...args);
  }
  get = (sha256: string) => this.inner.get(sha256);
  has = (sha256: string) => this.inner.has(sha256);
  delete = (sha256: string) => this.inner.delete(sha256);
  list = () => this.inner.list();
  sweepPartial = (before: Date) => this.inner.sweepPartial(before);
}
