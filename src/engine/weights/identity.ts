import { createHash } from 'node:crypto';
import { createReadStream, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { manifestText } from '../adapters/manifest.ts';
import { inspectModel } from '../loaders/load.ts';
import { fileVersion } from './files.ts';

/**
 * What identifies a model's weights: the sha256 of each of its files and of their manifest, computed
 * exactly as the registry computes a base version's sha256 (registry/local.ts describes a local model
 * with hashFiles, registry/digest.ts digests the manifest). A compute node reports it, so that the
 * edge sends a request only to a node holding the very files of the resolved base version.
 */
export interface FileDigest {
  name: string;
  sha256: string;
  bytes: number;
}

export type Progress = (done: number, total: number, file: string) => void;

async function hashFile(path: string, onBytes?: (n: number) => void): Promise<FileDigest> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
    onBytes?.((chunk as Buffer).length);
  }
  return { name: basename(path), sha256: hash.digest('hex'), bytes };
}

/**
 * Hashes files one after another, reporting bytes hashed over all of them. With `cacheDir`, a file
 * whose path, size, inode and times are unchanged since it was last hashed is not read again
 * (weights are gigabytes; a node restarts often).
 */
export async function hashFiles(
  paths: string[],
  options: { onProgress?: Progress; cacheDir?: string } = {},
): Promise<FileDigest[]> {
  const total = paths.reduce((n, p) => n + statSync(p).size, 0);
  let done = 0;
  const out: FileDigest[] = [];
  for (const p of paths) {
    const key = fileKey(p); // taken before reading: a file changed while hashed is hashed again next time
    const cached = options.cacheDir ? readCached(options.cacheDir, p, key) : undefined;
    const file =
      cached ??
      (await hashFile(p, (n) => {
        done += n;
        options.onProgress?.(done, total, basename(p));
      }));
    if (cached) {
      done += cached.bytes;
      options.onProgress?.(done, total, basename(p));
    } else if (options.cacheDir) writeCached(options.cacheDir, p, key, file);
    out.push(file);
  }
  return out;
}

/** The sha256 of a version's files: of their manifest (see manifestText), as the registry assigns it. */
function manifestSha256(files: ReadonlyArray<{ name: string; sha256: string }>): string {
  return createHash('sha256').update(manifestText(files)).digest('hex');
}

/** The sha256 a base version of this local model (folder or checkpoint) has in the registry. */
export async function modelSha256(path: string, options: { cacheDir?: string } = {}): Promise<string> {
  return manifestSha256(await hashFiles(inspectModel(path).files, options));
}

/** What a cached digest is valid for: the file as it is now (see fileVersion). */
function fileKey(path: string): string {
  return `${resolve(path)}\u0000${fileVersion(statSync(path, { bigint: true }))}`;
}

const cachePath = (dir: string, path: string) =>
  join(dir, `${createHash('sha256').update(resolve(path)).digest('hex')}.json`);

function readCached(dir: string, path: string, key: string): FileDigest | undefined {
  try {
    const entry = JSON.parse(readFileSync(cachePath(dir, path), 'utf8')) as { key: string; file: FileDigest };
    return entry.key === key ? entry.file : undefined;
  } catch {
    return undefined;
  }
}

function writeCached(dir: string, path: string, key: string, file: FileDigest): void {
  try {
    mkdirSync(dir, { recursive: true });
    const target = cachePath(dir, path);
    writeFileSync(`${target}.tmp`, JSON.stringify({ key, file }));
    renameSync(`${target}.tmp`, target); // whole or absent, never half-written
  } catch {
    // A cache that cannot be written only costs time at the next start.
  }
}
