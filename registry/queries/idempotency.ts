import { and, eq, lt } from 'drizzle-orm';
import type { Db, Statement } from '../db/index.ts';
import { adapters, adapterVersions, idempotencyKeys } from '../schema.ts';

/** How long a key is remembered: a client retries within minutes; a day is generous. */
const KEY_TTL_MS = 24 * 60 * 60_000;

export interface IdempotencyKey {
  fingerprint: string;
  versionId: string;
  /** The adapter the first request published. */
  adapter: string;
}

/** The version a tenant's earlier publish with `key` made, if any (and the key is still remembered). */
export async function findIdempotencyKey(db: Db, tenantId: string, key: string): Promise<IdempotencyKey | undefined> {
  const [row] = await db
    .select({ fingerprint: idempotencyKeys.fingerprint, versionId: idempotencyKeys.versionId, adapter: adapters.name })
    .from(idempotencyKeys)
    .innerJoin(adapterVersions, eq(adapterVersions.id, idempotencyKeys.versionId))
    .innerJoin(adapters, eq(adapters.id, adapterVersions.adapterId))
    .where(and(eq(idempotencyKeys.tenantId, tenantId), eq(idempotencyKeys.key, key)))
    .limit(1);
  return row;
}

/** Records a key with the version it made: part of the version's atomic write (the key is unique per tenant). */
export function recordIdempotencyKeyStatement(
  db: Db,
  row: { tenantId: string; key: string; fingerprint: string; versionId: string; now: Date },
): Statement {
  const { now, ...values } = row;
  return db.insert(idempotencyKeys).values({ ...values, createdAt: now });
}

/** Forgets keys older than a day. */
export async function purgeIdempotencyKeys(db: Db, now = Date.now()): Promise<void> {
  await db.delete(idempotencyKeys).where(lt(idempotencyKeys.createdAt, new Date(now - KEY_TTL_MS)));
}
