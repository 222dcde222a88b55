import type { D1Database, D1PreparedStatement } from '@cloudflare/workers-types/index.ts';
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

/**
 * A D1 binding that counts its round trips to the database: each statement run on its own
 * (first/all/run/raw), each batch and each exec is one. The real binding does the work; the count
 * is for tests and `versa bench edge --worker` (the Worker's VERSA_COUNT_D1 switch).
 */
export class D1RoundTrips {
  count = 0;
  readonly binding: D1Database;
  private readonly real = new WeakMap<object, D1PreparedStatement>();

  constructor(inner: D1Database) {
    const counted = this.statement.bind(this);
    const real = (s: D1PreparedStatement) => this.real.get(s) ?? s;
    const binding: Pick<D1Database, 'prepare' | 'batch' | 'exec'> = {
      prepare: (query) => counted(inner.prepare(query)),
      batch: (statements) => {
        this.count++;
        return inner.batch(statements.map(real));
      },
      exec: (query) => {
        this.count++;
        return inner.exec(query);
      },
    };
    this.binding = binding as D1Database; // what the registry uses of it (drizzle's D1 driver)
  }

  /** A statement whose runs count (bind gives another such statement). */
  private statement(inner: D1PreparedStatement): D1PreparedStatement {
    const run =
      <K extends 'first' | 'all' | 'run' | 'raw'>(method: K) =>
      (...args: unknown[]) => {
        this.count++;
        return (inner[method] as (...a: unknown[]) => unknown).apply(inner, args);
      };
    const wrapped = {
      bind: (...values: unknown[]) => this.statement(inner.bind(...values)),
      first: run('first'),
      all: run('all'),
      run: run('run'),
      raw: run('raw'),
    } as unknown as D1PreparedStatement;
    this.real.set(wrapped, inner);
    return wrapped;
  }
}
