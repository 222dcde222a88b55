import { and, eq, isNull } from 'drizzle-orm';
import type { RegistryDb } from './db/index.ts';
import { sha256Hex } from './hash.ts';
import { apiKeys, tenants } from './schema.ts';
import type { Principal, Scope } from '../src/http/principal.ts';

/**
 * API keys: `vsk_` + 32 random bytes (base64url). Only their sha256 is stored; the key itself is
 * shown once, when it is created. A key belongs to one tenant; `admin` manages that tenant's keys,
 * and only `operator` (the bootstrap key's scope) acts across tenants (src/http/principal.ts).
 */
const KEY_PREFIX = 'vsk_';

export function generateKey(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  let text = '';
  for (const b of bytes) text += String.fromCharCode(b);
  return KEY_PREFIX + btoa(text).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

const hashKey = (key: string) => sha256Hex(key);

/** Why `key` cannot be an API key (null if it can): checked before a server does any slow start-up work. */
export function keyFormatProblem(key: string): string | null {
  return /^vsk_[A-Za-z0-9_-]{16,196}$/.test(key)
    ? null
    : `an API key is "${KEY_PREFIX}" and 16 to 196 letters, digits, "-" or "_"`;
}

/** The principal a bearer key stands for, or null (unknown, malformed or revoked key). */
export async function authenticate(r: RegistryDb, key: string): Promise<Principal | null> {
  if (!key.startsWith(KEY_PREFIX) || key.length > 200) return null;
  const hash = await hashKey(key);
  const [row] = await r.db
    .select({ id: apiKeys.id, name: apiKeys.name, tenantId: apiKeys.tenantId, scopes: apiKeys.scopes })
    .from(apiKeys)
    .where(and(eq(apiKeys.keyHash, hash), isNull(apiKeys.revokedAt)))
    .limit(1);
  return row ? { keyId: row.id, keyName: row.name, tenantId: row.tenantId, scopes: row.scopes } : null;
}

export interface CreatedKey {
  id: string;
  /** The key itself: shown once, never stored. */
  key: string;
  tenantId: string;
  name: string;
  scopes: Scope[];
  prefix: string;
  createdAt: Date;
}

export interface KeyInput {
  tenant: string;
  name?: string;
  scopes: Scope[];
  now?: Date;
  /** Register this key instead of generating one (e.g. VERSA_API_KEY). */
  key?: string;
}

/** The bootstrap tenant: it holds the operator's key (VERSA_API_KEY, the key of `versa start`). */
const OPERATOR_TENANT = 'default';

/** Registers the operator's key (see createApiKey's `key`): what `versa start` and the Worker install. */
export function installOperatorKey(r: RegistryDb, key: string, name: string): Promise<CreatedKey> {
  return createApiKey(r, { tenant: OPERATOR_TENANT, name, scopes: ['admin', 'operator'], key });
}

/**
 * Creates an API key for a tenant, creating the tenant too if it does not exist yet. With
 * `input.key`, registers that key instead and does nothing if it is already registered: this is
 * how `npm start` and the Worker (secret VERSA_API_KEY) install the operator's key.
 */
export async function createApiKey(r: RegistryDb, input: KeyInput): Promise<CreatedKey> {
  const now = input.now ?? new Date();
  const key = input.key ?? generateKey();
  const problem = keyFormatProblem(key);
  if (problem) throw new Error(problem);
  const keyHash = await hashKey(key);
  const [existing] = await r.db.select().from(apiKeys).where(eq(apiKeys.keyHash, keyHash)).limit(1);
  const row = existing ?? {
    id: `key_${crypto.randomUUID().replace(/-/g, '').slice(0, 20)}`,
    tenantId: input.tenant,
    name: input.name ?? 'default',
    keyHash,
    keyPrefix: key.slice(0, KEY_PREFIX.length + 6),
    // An operator key is an admin key too: clients that look for `admin` (the dashboard) see it as one.
    scopes: [...new Set(input.scopes.includes('operator') ? [...input.scopes, 'admin' as const] : input.scopes)],
    createdAt: now,
    revokedAt: null,
  };
  if (!existing) {
    await r.atomic([
      r.db.insert(tenants).values({ id: input.tenant, name: input.tenant, createdAt: now }).onConflictDoNothing(),
      r.db.insert(apiKeys).values(row),
    ]);
  }
  return {
    id: row.id,
    key,
    tenantId: row.tenantId,
    name: row.name,
    scopes: row.scopes,
    prefix: row.keyPrefix,
    createdAt: row.createdAt,
  };
}
