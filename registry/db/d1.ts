import type { D1Database } from '@cloudflare/workers-types/index.ts';
import { drizzle } from 'drizzle-orm/d1';
import { schema, type Db, type RegistryDb, type Statement } from './index.ts';

/** The registry on a D1 binding (Workers, or wrangler's local runtime). Migrations: `wrangler d1 migrations apply`. */
export function d1Registry(binding: D1Database): RegistryDb {
  const db = drizzle(binding, { schema });
  return {
    db: db as unknown as Db,
    driver: 'd1',
    async atomic(statements: Statement[]) {
      if (!statements.length) return;
      // D1 runs a batch as one implicit transaction: all statements commit, or none does.
      await db.batch(statements as [Statement, ...Statement[]]);
    },
  };
}
