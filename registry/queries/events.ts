import type { RegistryDb } from '../db/index.ts';
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
