import type { BlobStore } from './blobs/store.ts';
import type { Db } from './db/index.ts';
import { blobReferences } from './queries/adapters.ts';

/**
 * Removes what a crash mid-publish can leave behind: blobs no version references and partial
 * uploads. Only things older than `graceMs` are touched, so uploads in flight are safe. The Node
 * server runs it at start and hourly; the Worker from its cron trigger.
 */
export async function sweepOrphans(
  db: Db,
  blobs: BlobStore,
  options: { now?: Date; graceMs?: number } = {},
): Promise<{ blobs: number; partial: number }> {
  const before = new Date((options.now ?? new Date()).getTime() - (options.graceMs ?? 60 * 60 * 1000));
  let removed = 0;
  for await (const blob of blobs.list()) {
    if (blob.uploaded >= before) continue;
    if ((await blobReferences(db, blob.sha256)) === 0) {
      await blobs.delete(blob.sha256);
      removed++;
    }
  }
  return { blobs: removed, partial: await blobs.sweepPartial(before) };
}
