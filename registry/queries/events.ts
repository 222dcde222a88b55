import { and, asc, eq } from 'drizzle-orm';
import type { Db, RegistryDb } from '../db/index.ts';
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

/** Appends usage / exposure / feedback events in one write. Events are never updated or deleted (triggers refuse). */
export async function appendEvents(r: RegistryDb, input: EventInput[], now = new Date()): Promise<void> {
  if (!input.length) return;
  // D1 caps bound parameters per statement at 100: 13 columns -> at most 7 rows per insert.
  const rows = input.map(({ at, ...e }) => ({ ...e, createdAt: at ?? now }));
  const statements = [];
  for (let i = 0; i < rows.length; i += 7) statements.push(r.db.insert(events).values(rows.slice(i, i + 7)));
  await r.atomic(statements);
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

/** Every event of an experiment, oldest first (results are computed from these). */
export async function experimentEvents(db: Db, experimentId: string): Promise<EventRow[]> {
  return db.select().from(events).where(eq(events.experimentId, experimentId)).orderBy(asc(events.id));
}
