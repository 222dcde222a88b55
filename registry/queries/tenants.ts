import { and, asc, eq, isNull, type SQL } from 'drizzle-orm';
import type { Db, RegistryDb } from '../db/index.ts';
import { conflict, notFound } from '../../src/http/errors.ts';
import { apiKeys, tenants } from '../schema.ts';

export type TenantRow = typeof tenants.$inferSelect;

/**
 * How large an adapter may be, as a fraction of its base's parameters, unless the operator set
 * another bound for the tenant: a far larger adapter is not an adapter, and it makes every adapter
 * batched with it pay for its size.
 */
export const DEFAULT_MAX_ADAPTER_FRACTION = 0.1;

export interface TenantSettings {
  name?: string;
  /** null: back to the default (DEFAULT_MAX_ADAPTER_FRACTION). */
  maxAdapterFraction?: number | null;
}

export async function createTenant(r: RegistryDb, id: string, settings: TenantSettings, now: Date): Promise<TenantRow> {
  const row = {
    id,
    name: settings.name ?? id,
    maxAdapterFraction: settings.maxAdapterFraction ?? null,
    createdAt: now,
  };
  const inserted = await r.db.insert(tenants).values(row).onConflictDoNothing().returning();
  if (!inserted.length) throw conflict(`tenant "${id}" already exists`, 'tenant_exists');
  return row;
}

export async function updateTenant(r: RegistryDb, id: string, settings: TenantSettings): Promise<TenantRow> {
  const set = Object.fromEntries(Object.entries(settings).filter(([, v]) => v !== undefined));
  const [row] = Object.keys(set).length
    ? await r.db.update(tenants).set(set).where(eq(tenants.id, id)).returning()
    : await r.db.select().from(tenants).where(eq(tenants.id, id));
  if (!row) throw notFound(`tenant "${id}" not found`, 'tenant_not_found');
  return row;
}

export async function getTenant(db: Db, id: string): Promise<TenantRow | undefined> {
  const [row] = await db.select().from(tenants).where(eq(tenants.id, id));
  return row;
}

export function listTenants(db: Db): Promise<TenantRow[]> {
  return db.select().from(tenants).orderBy(asc(tenants.id));
}

/** The tenant's adapter size bound, as a fraction of the base's parameters. */
export async function maxAdapterFraction(db: Db, tenant: string): Promise<number> {
  const [row] = await db.select({ fraction: tenants.maxAdapterFraction }).from(tenants).where(eq(tenants.id, tenant));
  return row?.fraction ?? DEFAULT_MAX_ADAPTER_FRACTION;
}

export interface KeyInfo {
  id: string;
  tenantId: string;
  name: string;
  prefix: string;
  scopes: string[];
  createdAt: Date;
  revokedAt: Date | null;
}

export function listApiKeys(db: Db, tenant?: string): Promise<KeyInfo[]> {
  return listApiKeysWhere(db, tenant ? eq(apiKeys.tenantId, tenant) : undefined);
}

async function listApiKeysWhere(db: Db, where: SQL | undefined): Promise<KeyInfo[]> {
  const rows = await db.select().from(apiKeys).where(where).orderBy(asc(apiKeys.createdAt), asc(apiKeys.id));
  return rows.map((k) => ({
    id: k.id,
    tenantId: k.tenantId,
    name: k.name,
    prefix: k.keyPrefix,
    scopes: k.scopes,
    createdAt: k.createdAt,
    revokedAt: k.revokedAt,
  }));
}

/**
 * Revokes key `id`. With `allowed`, a key it refuses is answered exactly like a key that does not
 * exist (404): a tenant admin learns nothing about other tenants' keys.
 */
export async function revokeApiKey(
  r: RegistryDb,
  id: string,
  now: Date,
  allowed: (key: KeyInfo) => boolean = () => true,
): Promise<KeyInfo> {
  const [row] = await listApiKeysWhere(r.db, eq(apiKeys.id, id));
  if (!row || !allowed(row)) throw notFound(`API key "${id}" not found`, 'key_not_found');
  await r.db
    .update(apiKeys)
    .set({ revokedAt: now })
    .where(and(eq(apiKeys.id, id), isNull(apiKeys.revokedAt)));
  return (await listApiKeysWhere(r.db, eq(apiKeys.id, id)))[0];
}
