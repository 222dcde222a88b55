import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { drizzle } from 'drizzle-orm/better-sqlite3';
import { migrate } from 'drizzle-orm/better-sqlite3/migrator';
import { afterAll, describe, expect, it } from 'vitest';
import { sqliteRegistry } from '../../registry/db/sqlite.ts';
import { REPO_ROOT } from '../helpers/registry.ts';

/**
 * `admin` stopped spanning tenants: a registry migrated from before keeps its operator, because
 * the bootstrap tenant's admin keys (VERSA_API_KEY, the key of `versa start`) gain `operator`.
 */
describe('the operator migration', () => {
  const dir = mkdtempSync(join(tmpdir(), 'versa-operator-migration-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** migrations/ as it was before the operator scope: the journal's entries before `tag`. */
  function migrationsBefore(tag: string): string {
    const out = join(dir, 'migrations-before');
    mkdirSync(join(out, 'meta'), { recursive: true });
    const journal = JSON.parse(readFileSync(join(REPO_ROOT, 'migrations/meta/_journal.json'), 'utf8'));
    const at = journal.entries.findIndex((e: { tag: string }) => e.tag === tag);
    expect(at).toBeGreaterThan(0);
    journal.entries = journal.entries.slice(0, at);
    writeFileSync(join(out, 'meta/_journal.json'), JSON.stringify(journal));
    for (const e of journal.entries)
      copyFileSync(join(REPO_ROOT, 'migrations', `${e.tag}.sql`), join(out, `${e.tag}.sql`));
    return out;
  }

  it("turns the bootstrap tenant's admin keys into operator keys, and nothing else", () => {
    const path = join(dir, 'registry.db');
    const old = new Database(path);
    migrate(drizzle(old), { migrationsFolder: migrationsBefore('0005_operator_scope') });
    const key = (id: string, tenant: string, scopes: string[]) =>
      old
        .prepare(
          `insert into api_keys (id, tenant_id, name, key_hash, key_prefix, scopes, created_at)
           values (?, ?, ?, ?, 'vsk_xx', ?, 0)`,
        )
        .run(id, tenant, id, `hash-${id}`, JSON.stringify(scopes));
    for (const t of ['default', 'acme'])
      old.prepare(`insert into tenants (id, name, created_at) values (?, ?, 0)`).run(t, t);
    key('key_bootstrap', 'default', ['admin']);
    key('key_defaultread', 'default', ['read', 'publish']);
    key('key_acmeadmin', 'acme', ['admin']);
    old.close();

    const registry = sqliteRegistry(path);
    const scopes = Object.fromEntries(
      (registry.sqlite.prepare('select id, scopes from api_keys').all() as Array<{ id: string; scopes: string }>).map(
        (r) => [r.id, JSON.parse(r.scopes)],
      ),
    );
    registry.close();
    expect(scopes).toEqual({
      key_bootstrap: ['admin', 'operator'],
      key_defaultread: ['read', 'publish'],
      key_acmeadmin: ['admin'],
    });
  });
});
