import { eq, lt, sql } from 'drizzle-orm';
import type { BlobStore } from '../blobs/store.ts';
import type { Db, Statement } from '../db/index.ts';
import { blobDeletions, blobLeases } from '../schema.ts';

/**
 * Blob lifetimes. Blobs are shared by content (sha256), so "is anyone using this?" must be answered
 * atomically with the delete, on D1 too (no interactive transactions). Two rows make it so:
 *
 * - a lease (upload, sha256, expiry): an upload takes one on every blob it will commit, created or
 *   deduplicated, before the blob lands or is reused, renews it while it runs, and drops it in the
 *   same atomic write that commits its version (whose file rows then reference the blob);
 * - a deletion claim: a single INSERT that succeeds only when no version file and no live lease
 *   references the blob. A lease cannot be taken while a claim stands (the upload waits), so once a
 *   claim is in, the blob can be deleted; an upload that reuses the content after that re-stores it.
 *
 * A deleter that dies leaves a claim; it goes stale after CLAIM_STALE_MS and is ignored.
 */

/** How long a lease lives without renewal: the time a crashed upload's blobs stay protected. */
const LEASE_MS = 5 * 60_000;
/** How often an upload in flight renews its leases. */
export const LEASE_RENEW_MS = 60_000;
/** A deletion claim older than this belongs to a deleter that died. */
const CLAIM_STALE_MS = 60_000;

interface LeaseOptions {
  now?: () => number;
  /** Waits between tries while a deletion claim blocks the lease (tests shorten it). */
  pollMs?: number;
}

/**
 * Takes (or renews) `uploadId`'s lease on `sha256`. Waits while a deleter holds a fresh claim on the
 * blob (a delete takes milliseconds); after that the caller must check whether the blob is still
 * there, and store it again if not.
 */
export async function leaseBlob(db: Db, sha256: string, uploadId: string, options: LeaseOptions = {}): Promise<void> {
  const now = options.now ?? Date.now;
  const giveUp = now() + CLAIM_STALE_MS + 5_000;
  for (;;) {
    const t = now();
    const rows = await db.all<{ sha256: string }>(sql`
      insert into blob_leases (sha256, upload_id, expires_at)
      select ${sha256}, ${uploadId}, ${t + LEASE_MS}
      where not exists (
        select 1 from blob_deletions where sha256 = ${sha256} and claimed_at > ${t - CLAIM_STALE_MS})
      on conflict (sha256, upload_id) do update set expires_at = excluded.expires_at
      returning sha256`);
    if (rows.length) return;
    if (t > giveUp) throw new Error(`blob ${sha256} stays claimed for deletion`);
    await new Promise((r) => setTimeout(r, options.pollMs ?? 25));
  }
}

/** Extends every lease of an upload in flight. */
export async function renewLeases(db: Db, uploadId: string, now = Date.now()): Promise<void> {
  await db
    .update(blobLeases)
    .set({ expiresAt: new Date(now + LEASE_MS) })
    .where(eq(blobLeases.uploadId, uploadId));
}

/** The statement that drops an upload's leases: put it in the atomic write that commits the version. */
export function releaseLeasesStatement(db: Db, uploadId: string): Statement {
  return db.delete(blobLeases).where(eq(blobLeases.uploadId, uploadId));
}

/** Drops an upload's leases (an upload that will not commit). */
export async function releaseLeases(db: Db, uploadId: string): Promise<void> {
  await db.delete(blobLeases).where(eq(blobLeases.uploadId, uploadId));
}

/**
 * Deletes a blob if, atomically with the decision, no version file references it and no live lease
 * holds it. Returns whether it was deleted.
 */
export async function deleteBlobIfUnused(db: Db, blobs: BlobStore, sha256: string, now = Date.now()): Promise<boolean> {
  const claimed = await db.all<{ sha256: string }>(sql`
    insert into blob_deletions (sha256, claimed_at)
    select ${sha256}, ${now}
    where not exists (select 1 from adapter_files where sha256 = ${sha256})
      and not exists (select 1 from base_model_files where sha256 = ${sha256})
      and not exists (select 1 from blob_leases where sha256 = ${sha256} and expires_at > ${now})
    on conflict (sha256) do update set claimed_at = excluded.claimed_at
      where blob_deletions.claimed_at <= ${now - CLAIM_STALE_MS}
    returning sha256`);
  if (!claimed.length) return false;
  try {
    await blobs.delete(sha256);
  } finally {
    await db.delete(blobDeletions).where(eq(blobDeletions.sha256, sha256));
  }
  return true;
}

/** Drops expired leases and stale claims (what crashed uploads and deleters leave). */
export async function purgeExpired(db: Db, now = Date.now()): Promise<void> {
  await db.delete(blobLeases).where(lt(blobLeases.expiresAt, new Date(now)));
  await db.delete(blobDeletions).where(lt(blobDeletions.claimedAt, new Date(now - CLAIM_STALE_MS)));
}
