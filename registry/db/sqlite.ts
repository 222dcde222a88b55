import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { drizzle } from 'drizzle-orm/better-sqlite3';
import { migrate } from 'drizzle-orm/better-sqlite3/migrator';
import { schema, type Db, type RegistryDb, type Statement } from './index.ts';

const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations', import.meta.url));

export interface SqliteRegistry extends RegistryDb {
  sqlite: Database.Database;
  close(): void;
}

/**
 * The registry in a SQLite file (or ':memory:') through better-sqlite3, with migrations/ applied
 * by drizzle's migrator: the Node default.
 */
export function sqliteRegistry(path: string, options: { migrate?: boolean } = {}): SqliteRegistry {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  const sqlite = new Database(path);
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma('foreign_keys = ON'); // D1 enforces foreign keys; SQLite only when asked
  sqlite.pragma('busy_timeout = 5000');
  const db = drizzle(sqlite, { schema });
  if (options.migrate !== false) migrate(db, { migrationsFolder: MIGRATIONS_DIR });
  const prepared = preparedWrites(sqlite);
  return {
    db: db as unknown as Db,
    driver: 'sqlite',
    sqlite,
    async atomic(statements: Statement[]) {
      // better-sqlite3 is synchronous: the statements run back to back inside one transaction, with
      // no await in between where another request's statements could interleave.
      sqlite.transaction(() => {
        for (const s of statements) prepared(s).run();
      })();
    },
    close: () => sqlite.close(),
  };
}

/** The most write statements kept prepared (distinct SQL texts: a few dozen in practice). */
const PREPARED_WRITES = 256;

/**
 * A write statement ready to run, prepared once per SQL text: drizzle prepares every query again
 * (better-sqlite3's prepare was a third of the CPU the edge's event writes took per generation). Only
 * `run()` is used, so a kept statement never changes mode (drizzle's `raw()` is for reads).
 */
function preparedWrites(sqlite: Database.Database): (s: Statement) => { run(): unknown } {
  const kept = new Map<string, Database.Statement>();
  return (s) => {
    const query = (s as { toSQL?: () => { sql: string; params: unknown[] } }).toSQL?.();
    if (!query) return s as unknown as { run(): unknown }; // not a query builder: drizzle runs it
    let statement = kept.get(query.sql);
    if (!statement) {
      if (kept.size >= PREPARED_WRITES) kept.delete(kept.keys().next().value!);
      kept.set(query.sql, (statement = sqlite.prepare(query.sql)));
    }
    return { run: () => statement.run(...query.params) };
  };
}
