import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat, unlink } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { join, resolve, sep } from 'node:path';
import { Readable } from 'node:stream';
import { nodeHasher } from '../hash-node.ts';
import {
  assertSha256,
  BlobIntegrityError,
  toStream,
  type BlobListing,
  type BlobStore,
  type PutOptions,
  type StoredBlob,
} from './store.ts';

/**
 * Blobs in a local folder: `<root>/sha256/<first 2 hex>/<sha256>`. Uploads are written to
 * `<root>/partial/<random>` while hashed, then renamed into place, so a blob path only ever holds
 * complete, verified content.
 */
export class FolderBlobStore implements BlobStore {
  readonly root: string;

  constructor(root: string) {
    this.root = resolve(root);
  }

  /** The path of a blob: only from a validated sha256, and checked to stay inside the root. */
  pathOf(sha256: string): string {
    assertSha256(sha256);
    const path = resolve(this.root, 'sha256', sha256.slice(0, 2), sha256);
    if (!path.startsWith(this.root + sep)) throw new Error('blob path escapes the store root');
    return path;
  }

  async put(body: ReadableStream<Uint8Array> | Uint8Array, options: PutOptions = {}): Promise<StoredBlob> {
    const partialDir = join(this.root, 'partial');
    await mkdir(partialDir, { recursive: true });
    const partial = join(partialDir, randomUUID());
    const hasher = nodeHasher();
    let bytes = 0;
    const file = await open(partial, 'wx');
    try {
      for await (const chunk of toStream(body) as unknown as AsyncIterable<Uint8Array>) {
        hasher.update(chunk);
        bytes += chunk.length;
        await file.write(chunk);
      }
      await file.sync();
      await file.close();
    } catch (e) {
      // A full disk (or quota) may surface at any of these, close included: leave nothing behind.
      await file.close().catch(() => {});
      await unlink(partial).catch(() => {});
      throw e;
    }
    const sha256 = await hasher.digest();
    if (options.sha256 !== undefined && options.sha256 !== sha256) {
      await unlink(partial).catch(() => {});
      throw new BlobIntegrityError(options.sha256, sha256);
    }
    const path = this.pathOf(sha256);
    try {
      await options.reserve?.(sha256);
    } catch (e) {
      await unlink(partial).catch(() => {});
      throw e;
    }
    if (await exists(path)) {
      await unlink(partial);
      return { sha256, bytes, created: false };
    }
    await mkdir(join(path, '..'), { recursive: true });
    await rename(partial, path);
    return { sha256, bytes, created: true };
  }

  async get(sha256: string) {
    const path = this.pathOf(sha256);
    const info = await stat(path).catch(() => null);
    if (!info) return null;
    return { body: Readable.toWeb(createReadStream(path)) as unknown as ReadableStream<Uint8Array>, bytes: info.size };
  }

  async has(sha256: string): Promise<boolean> {
    return exists(this.pathOf(sha256));
  }

  async delete(sha256: string): Promise<void> {
    await rm(this.pathOf(sha256), { force: true });
  }

  async *list(): AsyncIterable<BlobListing> {
    const top = join(this.root, 'sha256');
    for (const prefix of await readdir(top).catch(() => [] as string[])) {
      for (const name of await readdir(join(top, prefix)).catch(() => [] as string[])) {
        if (!/^[0-9a-f]{64}$/.test(name)) continue;
        const info = await stat(join(top, prefix, name)).catch(() => null);
        if (info) yield { sha256: name, bytes: info.size, uploaded: info.mtime };
      }
    }
  }

  async sweepPartial(before: Date): Promise<number> {
    const dir = join(this.root, 'partial');
    let removed = 0;
    for (const name of await readdir(dir).catch(() => [] as string[])) {
      const info = await stat(join(dir, name)).catch(() => null);
      if (info && info.mtime < before) {
        await rm(join(dir, name), { force: true });
        removed++;
      }
    }
    return removed;
  }
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}
