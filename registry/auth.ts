import { and, eq, isNull } from 'drizzle-orm';
import type { RegistryDb } from './db/index.ts';
import { sha256Hex } from './hash.ts';
import { apiKeys, tenants } from './schema.ts';
import type { Principal, Scope } from '../src/http/principal.ts';

/**
 * API keys: `vsk_` + 32 random bytes (base64url). Only their sha256 is stored; the key itself is
 * shown once, when it is created. `admin` implies every other scope and is the registry operator's
 * scope: it manages tenants and keys and sees every tenant's adapters.
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

/**
 * Creates an API key for a tenant, creating the tenant too if it does not exist yet. With
 * `input.key`, registers that key instead and does nothing if it is already registered: this is
 * how `npm start` and the Worker (secret VERSA_API_KEY) install their admin key.
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
    scopes: [...new Set(input.scopes)],
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
