import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serve, type ServerType } from '@hono/node-server';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createApiKey } from '../../registry/auth.ts';
import { FolderBlobStore } from '../../registry/blobs/folder.ts';
import { sqliteRegistry, type SqliteRegistry } from '../../registry/db/sqlite.ts';
import { createApp } from '../../src/edge/app.ts';
import { errorOf, publish, published, registerBase, snapshot, toyConfig, vlmAdapter } from '../helpers/adapters.ts';
import { versa } from '../helpers/cli.ts';
import { BACKENDS, FaultInjectingBlobs, startRegistry, type TestRegistry } from '../helpers/registry.ts';

/**
 * A full disk is a 507 naming the cause on every write route, and the write changes nothing.
 *
 * For real where the test may mount a tmpfs (root, as in the CI container): the database and the
 * blob folder each live on a small tmpfs that the test fills up. Everywhere (and on D1 + R2, whose
 * local runtime cannot be filled) a store that fails its writes with ENOSPC stands in for the disk.
 */

const FULL = /^registry storage is full \((ENOSPC|SQLITE_FULL): [^)]+\): the request changed nothing/;

/** Mounts a tmpfs of `bytes` at `dir`; false where this process may not. */
function mountTmpfs(dir: string, bytes: number): boolean {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes}`, 'tmpfs', dir], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Fills the filesystem of `dir` until a write meets ENOSPC; returns the filler's path. */
function fill(dir: string): string {
  const path = join(dir, 'filler');
  const fd = openSync(path, 'w');
  try {
    for (const size of [1 << 16, 4096, 1]) {
      const chunk = Buffer.alloc(size);
      for (;;) {
        try {
          writeSync(fd, chunk);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'ENOSPC') break;
          throw e;
        }
      }
    }
  } finally {
    closeSync(fd);
  }
  return path;
}

/** Whether this process may mount a tmpfs (tried once on a scratch folder). */
function canMount(): boolean {
  const probe = mkdtempSync(join(tmpdir(), 'versa-mount-probe-'));
  try {
    if (!mountTmpfs(probe, 1 << 20)) return false;
    execFileSync('umount', [probe]);
    return true;
  } finally {
    rmSync(probe, { recursive: true, force: true });
  }
}

describe.skipIf(!canMount())('a full disk, for real (tmpfs)', () => {
  const root = mkdtempSync(join(tmpdir(), 'versa-full-'));
  const dbDir = join(root, 'db');
  const blobDir = join(root, 'blobs');
  let sqlite: SqliteRegistry;
  let server: ServerType;
  let reg: TestRegistry;
  const config = toyConfig();

  beforeAll(async () => {
    vi.spyOn(console, 'error').mockImplementation(() => {});
    mkdirSync(dbDir);
    mkdirSync(blobDir);
    if (!mountTmpfs(dbDir, 8 << 20) || !mountTmpfs(blobDir, 1 << 20)) throw new Error('tmpfs mount failed');
    sqlite = sqliteRegistry(join(dbDir, 'registry.db'));
    const blobs = new FolderBlobStore(join(blobDir, 'store'));
    const app = createApp({ registry: sqlite, blobs });
    server = await new Promise((ready) => {
      const s = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => ready(s));
    });
    const address = server.address();
    const url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
    const admin = await createApiKey(sqlite, { tenant: 'acme', name: 'admin', scopes: ['admin', 'operator'] });
    reg = {
      backend: 'sqlite',
      url,
      registry: sqlite,
      blobs,
      adminKey: admin.key,
      dir: root,
      raw: async (sql) => void sqlite.sqlite.exec(sql),
      partials: async () => readdirSync(join(blobDir, 'store', 'partial')).length,
      key: async () => '',
      fetch: (path, init = {}) => {
        const { key, ...rest } = init;
        const headers = new Headers(rest.headers);
        headers.set('authorization', `Bearer ${key ?? admin.key}`);
        return fetch(url + path, { ...rest, headers });
      },
      close: async () => {},
    };
    await registerBase(reg, 'toy');
    await published(reg, 'kept', { base: 'toy@1', alias: 'production' }, vlmAdapter(config, { seed: 1 }));
    await published(reg, 'kept', { base: 'toy@1', alias: 'production' }, vlmAdapter(config, { seed: 2 }));
  });
  afterAll(async () => {
    vi.restoreAllMocks();
    await new Promise<void>((done) => server?.close(() => done()));
    sqlite?.close();
    for (const dir of [dbDir, blobDir]) execFileSync('umount', [dir], { stdio: 'ignore' });
    rmSync(root, { recursive: true, force: true });
  });

  it('publishing onto a full blob disk is a 507 (ENOSPC), leaving nothing behind', async () => {
    const before = await snapshot(reg);
    const filler = fill(blobDir);
    try {
      const res = await publish(reg, 'fresh', { base: 'toy@1', alias: 'production' }, vlmAdapter(config, { seed: 3 }));
      expect(res.status).toBe(507);
      const error = await errorOf(res);
      expect(error.message).toMatch(FULL);
      expect(error.message).toContain('ENOSPC');
      expect(error.code).toBe('storage_full');
    } finally {
      rmSync(filler);
    }
    expect(await snapshot(reg)).toEqual(before);
  });

  it('`versa publish` prints the cause in one line', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'versa-full-cli-'));
    for (const f of vlmAdapter(config, { seed: 4 })) writeFileSync(join(dir, f.name), f.bytes);
    const filler = fill(blobDir);
    try {
      const r = await versa(
        ['publish', dir, '--name', 'fresh', '--base', 'toy@1', '--registry', reg.url, '--key', reg.adminKey],
        { env: { NO_COLOR: '1' } },
      );
      expect(r.code).not.toBe(0);
      const lines = r.stderr.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/^versa: error: 507: registry storage is full \(ENOSPC: no space left on device\)/);
    } finally {
      rmSync(filler);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  const json = (method: string, body: unknown) => ({
    method,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const writes: Array<[string, () => Promise<Response>]> = [
    ['publish', () => publish(reg, 'fresh', { base: 'toy@1' }, vlmAdapter(config, { seed: 5 }))],
    [
      'base import',
      () =>
        reg.fetch(
          '/v1/models/toy/versions',
          json('POST', {
            architecture: 'gpt2',
            config,
            files: [{ name: 'model.safetensors', sha256: 'b'.repeat(64), bytes: 1 }],
          }),
        ),
    ],
    ['alias move', () => reg.fetch('/v1/adapters/kept/aliases/production', json('PUT', { version: 1 }))],
    ['alias rollback', () => reg.fetch('/v1/adapters/kept/aliases/production/rollback', { method: 'POST' })],
    ['status change', () => reg.fetch('/v1/adapters/kept/versions/2', json('PATCH', { status: 'deprecated' }))],
    ['adapter change', () => reg.fetch('/v1/adapters/kept', json('PATCH', { description: 'new words' }))],
    ['tenant creation', () => reg.fetch('/v1/tenants', json('POST', { id: 'newco' }))],
    ['key creation', () => reg.fetch('/v1/keys', json('POST', { tenant: 'acme', name: 'k', scopes: ['read'] }))],
  ];

  it.each(writes)('%s onto a full database disk is a 507 (SQLITE_FULL) and changes nothing', async (_name, write) => {
    // Every write must now grow the WAL, on a disk with no room left.
    sqlite.sqlite.pragma('wal_checkpoint(TRUNCATE)');
    const before = await snapshot(reg);
    const filler = fill(dbDir);
    try {
      const res = await write();
      const error = await errorOf(res);
      expect(res.status, error.message).toBe(507);
      expect(error.message).toMatch(FULL);
    } finally {
      rmSync(filler);
    }
    expect(await snapshot(reg)).toEqual(before);
  });
});

/** The errno a write to a full disk fails with. */
const diskFull = () =>
  Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28 });

describe.each(BACKENDS)('a full disk, injected (%s)', (backend) => {
  let reg: TestRegistry;
  let blobs: FaultInjectingBlobs;
  const config = toyConfig();

  beforeAll(async () => {
    vi.spyOn(console, 'error').mockImplementation(() => {});
    reg = await startRegistry(backend, { wrapBlobs: (b) => (blobs = new FaultInjectingBlobs(b)) });
    await registerBase(reg, 'toy');
  });
  afterAll(async () => {
    vi.restoreAllMocks();
    await reg?.close();
  });

  it('a publish whose blob write meets ENOSPC is a 507 and leaves nothing behind', async () => {
    const before = await snapshot(reg);
    blobs.failPut = diskFull;
    try {
      const res = await publish(reg, 'fresh', { base: 'toy@1' }, vlmAdapter(config, { seed: 1 }));
      expect(res.status).toBe(507);
      expect((await errorOf(res)).message).toMatch(FULL);
    } finally {
      blobs.failPut = () => undefined;
    }
    expect(await snapshot(reg)).toEqual(before);
  });
});
