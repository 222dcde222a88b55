import type { BlobStore } from './blobs/store.ts';
import type { Db } from './db/index.ts';
import { deleteBlobIfUnused, purgeExpired } from './queries/blobs.ts';
import { purgeIdempotencyKeys } from './queries/idempotency.ts';
import { fillBehaviorDigests } from './queries/adapter-versions.ts';

/**
 * Blobs younger than this are left alone even when nothing holds them: every upload leases its
 * blobs before they land, so this only covers writers outside a publish (and clock skew).
 */
const SWEEP_GRACE_MS = 5 * 60_000;
/** How often the Node server sweeps (it also sweeps at start). */
export const SWEEP_EVERY_MS = 10 * 60_000;

/**
 * Removes what a crash mid-publish can leave behind: blobs no version references and no live lease
 * holds (decided atomically with each delete, queries/blobs.ts), partial uploads, lapsed leases and
 * forgotten Idempotency-Keys. Only blobs older than `graceMs` are considered. It also fills in the
 * behavior digest of versions published before there was one. The Node server runs it at start
 * and every SWEEP_EVERY_MS; the Worker from its cron trigger.
 */
export async function sweepOrphans(
  db: Db,
  blobs: BlobStore,
  options: { now?: Date; graceMs?: number } = {},
): Promise<{ blobs: number; partial: number }> {
  const now = (options.now ?? new Date()).getTime();
  const before = new Date(now - (options.graceMs ?? SWEEP_GRACE_MS));
  await purgeExpired(db, now);
  let removed = 0;
  for await (const blob of blobs.list()) {
    if (blob.uploaded >= before) continue;
    if (await deleteBlobIfUnused(db, blobs, blob.sha256, now)) removed++;
  }
  await purgeIdempotencyKeys(db, now);
  await fillBehaviorDigests(db);
  return { blobs: removed, partial: await blobs.sweepPartial(before) };
}
