import { and, asc, eq, isNull } from 'drizzle-orm';
import type { Db, RegistryDb } from '../db/index.ts';
import { conflict, notFound } from '../../src/http/errors.ts';
import { apiKeys, tenants } from '../schema.ts';

export type TenantRow = typeof tenants.$inferSelect;

export async function createTenant(r: RegistryDb, id: string, name: string | undefined, now: Date): Promise<TenantRow> {
  const row = { id, name: name ?? id, createdAt: now };
  const inserted = await r.db.insert(tenants).values(row).onConflictDoNothing().returning();
  if (!inserted.length) throw conflict(`tenant "${id}" already exists`, 'tenant_exists');
  return row;
}

export async function getTenant(db: Db, id: string): Promise<TenantRow | undefined> {
  const [row] = await db.select().from(tenants).where(eq(tenants.id, id));
  return row;
}

export function listTenants(db: Db): Promise<TenantRow[]> {
  return db.select().from(tenants).orderBy(asc(tenants.id));
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

export async function listApiKeys(db: Db, tenant?: string): Promise<KeyInfo[]> {
  const rows = await db
    .select()
    .from(apiKeys)
    .where(tenant ? eq(apiKeys.tenantId, tenant) : undefined)
    .orderBy(asc(apiKeys.createdAt), asc(apiKeys.id));
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

export async function revokeApiKey(r: RegistryDb, id: string, now: Date): Promise<KeyInfo> {
  const [row] = await r.db.select().from(apiKeys).where(eq(apiKeys.id, id));
  if (!row) throw notFound(`API key "${id}" not found`, 'key_not_found');
  await r.db
    .update(apiKeys)
    .set({ revokedAt: now })
    .where(and(eq(apiKeys.id, id), isNull(apiKeys.revokedAt)));
  return (await listApiKeys(r.db, row.tenantId)).find((k) => k.id === id)!;
}
