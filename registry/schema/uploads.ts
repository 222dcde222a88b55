import { index, integer, primaryKey, sqliteTable, text } from 'drizzle-orm/sqlite-core';
import { adapterVersions } from './adapters.ts';
import { createdAt } from './common.ts';

/** What uploads hold while they run: blob leases and deletion claims, and publishes' idempotency keys. */

/**
 * Blob leases: an upload in flight holds one per blob it will commit (created or deduplicated),
 * taken before the bytes land and renewed while it runs; the commit drops them in its atomic
 * write. A blob is deleted only with no version, no live lease and a deletion claim (below).
 */
export const blobLeases = sqliteTable(
  'blob_leases',
  {
    sha256: text('sha256').notNull(),
    uploadId: text('upload_id').notNull(),
    expiresAt: integer('expires_at', { mode: 'timestamp_ms' }).notNull(),
  },
  (t) => [primaryKey({ columns: [t.sha256, t.uploadId] }), index('blob_leases_upload_idx').on(t.uploadId)],
);

/**
 * A deleter's claim on a blob, inserted only while nothing references or leases it: a lease cannot
 * be taken while the claim stands, so "check, then delete" cannot race an upload that reuses it.
 */
export const blobDeletions = sqliteTable('blob_deletions', {
  sha256: text('sha256').primaryKey(),
  claimedAt: integer('claimed_at', { mode: 'timestamp_ms' }).notNull(),
});

/** Idempotency-Key of a publish, per tenant: a retry with the same key answers the first version. */
export const idempotencyKeys = sqliteTable(
  'idempotency_keys',
  {
    tenantId: text('tenant_id').notNull(),
    key: text('key').notNull(),
    /** sha256 of what the request asked for (adapter, fields, content): another request may not reuse the key. */
    fingerprint: text('fingerprint').notNull(),
    versionId: text('version_id')
      .notNull()
      .references(() => adapterVersions.id),
    createdAt: createdAt(),
  },
  (t) => [primaryKey({ columns: [t.tenantId, t.key] }), index('idempotency_keys_created_idx').on(t.createdAt)],
);
