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
  return {
    db: db as unknown as Db,
    driver: 'sqlite',
    sqlite,
    async atomic(statements: Statement[]) {
      // better-sqlite3 is synchronous: the statements run back to back inside one transaction, with
      // no await in between where another request's statements could interleave.
      sqlite.transaction(() => {
        for (const s of statements) (s as unknown as { run(): unknown }).run();
      })();
    },
    close: () => sqlite.close(),
  };
}
