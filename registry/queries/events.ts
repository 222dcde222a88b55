import { and, eq, sql, type SQL } from 'drizzle-orm';
import type { Db, RegistryDb, Statement } from '../db/index.ts';
import { events, type EventType } from '../schema.ts';

export interface EventInput {
  type: EventType;
  at?: Date;
  tenantId?: string | null;
  keyId?: string | null;
  adapter?: string | null;
  adapterVersion?: number | null;
  base?: string | null;
  experimentId?: string | null;
  arm?: string | null;
  unit?: string | null;
  completionId?: string | null;
  data?: Record<string, unknown> | null;
}

/**
 * The inserts of events: D1 caps bound parameters per statement at 100, so 13 columns -> at most 7
 * rows per insert there; SQLite takes far more.
 */
export function eventStatements(r: RegistryDb, input: EventInput[], now = new Date()): Statement[] {
  const rows = input.map(({ at, ...e }) => ({ ...e, createdAt: at ?? now }));
  const per = r.driver === 'd1' ? 7 : 500;
  const statements: Statement[] = [];
  for (let i = 0; i < rows.length; i += per) statements.push(r.db.insert(events).values(rows.slice(i, i + per)));
  return statements;
}

/**
 * One event whose data also records, as `counted`, whether `counts` held when it was written (a
 * usage event: was it counted in its experiment?).
 */
export function countedEventStatement(r: RegistryDb, e: EventInput, counts: SQL, now = new Date()): Statement {
  const { at, data, ...rest } = e;
  return r.db.insert(events).values({
    ...rest,
    createdAt: at ?? now,
    data: sql`json_set(${JSON.stringify(data ?? {})}, '$.counted',
      json(case when ${counts} then 'true' else 'false' end))`,
  });
}

/**
 * Appends usage / exposure / feedback / metric events, and the aggregate updates they cause, in
 * one atomic write. Events are never updated or deleted (triggers refuse).
 */
export async function appendEvents(
  r: RegistryDb,
  input: EventInput[],
  now = new Date(),
  aggregates: Statement[] = [],
): Promise<void> {
  const statements = [...eventStatements(r, input, now), ...aggregates];
  if (statements.length) await r.atomic(statements);
}

export type EventRow = typeof events.$inferSelect;

/** The usage event of a completion (what feedback attaches to), if `tenantId` owns it. */
export async function findCompletion(db: Db, completionId: string, tenantId: string): Promise<EventRow | undefined> {
  const [row] = await db
    .select()
    .from(events)
    .where(and(eq(events.completionId, completionId), eq(events.type, 'usage'), eq(events.tenantId, tenantId)))
    .limit(1);
  return row;
}
