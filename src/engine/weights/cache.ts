import { createHash, randomBytes } from 'node:crypto';
import {
  closeSync,
  fstatSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  unlinkSync,
  utimesSync,
  readSync,
  writeFileSync,
  writeSync,
  type BigIntStats,
} from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import zlib from 'node:zlib';
import type { WeightFormat } from './quantize.ts';
import { fileVersion, readExact } from './files.ts';

/**
 * The converted-weights cache: the first load of a checkpoint in a weight format writes the bytes
 * exactly as the graph hands them to onnxruntime (converted from BF16/F16, quantized, packed, the
 * head transposed) to one file; later loads hand onnxruntime that file itself as the graph's
 * external data, which it maps into memory instead of copying. One file per (checkpoint, format):
 * `<key>.weights` in the cache folder, never changed once in place.
 *
 * File: "VERSAWC2", u32 header length, the header (JSON: what the file is for, and each weight's
 * name, type, dims, offset, length and crc32), padding, the data, "VERSAEND". The data and every
 * weight in it start at a multiple of 4096 bytes in the file: onnxruntime maps external data only
 * at page-aligned offsets (and reads it into memory otherwise).
 * A file is written to a temporary name in the same folder, fsynced and renamed, so readers see it
 * whole or not at all, and concurrent writers each rename a complete file (the last one stays).
 * A file that is short, malformed or fails a checksum is never used: the weights are converted
 * again and the file rewritten. The folder is bounded; the least recently used files go first.
 *
 * Checksumming a file is a pass over all of it (0.15 s for 440 MB here, a tenth of a float32 110M
 * start), so it is done once per version of the file: `<key>.weights.checked` (the stamp) records the
 * file's version (files.ts fileVersion: inode, size, times in ns) when its checksums passed,
 * or when this process wrote it. A load whose file still has those checks nothing but the frame;
 * any write to the file changes its ctime, so the next load checks it all. File times tick
 * coarsely (a clock tick), so a stamp taken by a check vouches only for a file last changed more
 * than a second before (a write in the same tick would not show). The stamp's mtime is the file's
 * last use (for the bound), since touching the file itself would change its ctime.
 */

/**
 * Bumped whenever the bytes a weight is converted to change for the same checkpoint and format
 * (the quantizer's layout, a transposition, the rounding of a float conversion).
 */
const LAYOUT_VERSION = 1;

const MAGIC = Buffer.from('VERSAWC2');
const END = Buffer.from('VERSAEND');
const ALIGN = 4096;
const SUFFIX = '.weights';
/** The stamp beside a cache file (see above): `<key>.weights.checked`. */
const STAMP = '.checked';
/** A check vouches for a file last changed at least this long before it (file times tick coarsely). */
const SETTLED_MS = 1000;
/** A temporary file older than this was left by a writer that died. */
const STALE_TEMP_MS = 60 * 60_000;

/** A weight the graph asks for (graph/onnx.ts GraphWeight has this shape). */
export interface ServedWeight {
  name: string;
  /** Its external-data location in the graph. */
  path: string;
  type: string;
  dims: readonly number[];
  /** Made from the checkpoint: the only weights the cache holds (the rest are computed constants). */
  converted: boolean;
  bytes(): Uint8Array;
}

/** Where the cache lives and how large it may grow. */
export interface WeightCacheOptions {
  dir: string;
  /** Bound on the folder's size in MiB (least recently used files are removed past it). */
  maxMb?: number;
}

const DEFAULT_CACHE_MB = 16384;

/** What identifies a cache file: the checkpoint's files as they are now, and the format. */
interface CacheKey {
  layout: number;
  model: string;
  /** Path, size, inode and times of each weight file: any write changes one of them. */
  files: Array<{ path: string; size: number; ino: number; mtimeMs: number; ctimeMs: number }>;
  format: WeightFormat;
}

/** How a load used the cache. */
export type CacheOutcome =
  | 'read' // every converted weight came from the cache
  | 'written' // none was cached: converted, and the file written
  | 'rebuilt' // a file was there but unusable (torn, corrupt, incomplete): converted and rewritten
  | 'not-written'; // converted, but the file could not be written (no room in the bound, an I/O error)

interface IndexEntry {
  name: string;
  type: string;
  dims: number[];
  /** From the start of the data. */
  offset: number;
  length: number;
  crc: number;
}

interface Header {
  key: CacheKey;
  weights: IndexEntry[];
  dataBytes: number;
}

/** One cache file as `versa cache ls` shows it. */
export interface CacheEntryInfo {
  id: string;
  file: string;
  model: string;
  format: WeightFormat;
  bytes: number;
  lastUsed: Date;
  /** False for a file that is torn or malformed (it will be rebuilt, or can be removed). */
  valid: boolean;
}

/**
 * The cache folder of commands run without an explicit one: $VERSA_HOME/cache when VERSA_HOME is
 * set, else the user's cache folder ($XDG_CACHE_HOME or ~/.cache)/versa/weights, so that
 * `versa generate` run anywhere creates no folder where it runs.
 */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.VERSA_HOME
    ? join(resolve(env.VERSA_HOME), 'cache')
    : join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'versa', 'weights');
}

/** The cache's bound in MiB: VERSA_CACHE_MB, else DEFAULT_CACHE_MB (0: no cache). */
export function cacheBoundMb(env: NodeJS.ProcessEnv = process.env): number {
  const text = env.VERSA_CACHE_MB?.trim();
  const maxMb = text ? Number(text) : DEFAULT_CACHE_MB;
  if (!Number.isFinite(maxMb) || maxMb < 0)
    throw new Error(`VERSA_CACHE_MB must be a number of MiB, 0 or more (got "${env.VERSA_CACHE_MB}")`);
  return maxMb;
}

/** The cache a command uses (see defaultCacheDir and cacheBoundMb); undefined when turned off. */
export function weightCacheFromEnv(env: NodeJS.ProcessEnv = process.env): WeightCacheOptions | undefined {
  const maxMb = cacheBoundMb(env);
  return maxMb === 0 ? undefined : { dir: defaultCacheDir(env), maxMb };
}

/** The key of a checkpoint's files in a format. */
export function cacheKey(model: string, files: readonly string[], format: WeightFormat): CacheKey {
  return {
    layout: LAYOUT_VERSION,
    model: resolve(model),
    files: files.map((f) => {
      const s = statSync(f);
      return { path: resolve(f), size: s.size, ino: s.ino, mtimeMs: s.mtimeMs, ctimeMs: s.ctimeMs };
    }),
    format: { float: format.float, quantize: format.quantize, block: format.quantize === 'none' ? 0 : format.block },
  };
}

const keyText = (key: CacheKey) => JSON.stringify(key);
const idOf = (key: CacheKey) => createHash('sha256').update(keyText(key)).digest('hex').slice(0, 32);

/** Weights that onnxruntime reads from a cache file: each weight's external-data location -> its bytes there. */
export interface WeightsFile {
  file: string;
  at: ReadonlyMap<string, { offset: number; length: number }>;
}

/**
 * The weights as onnxruntime takes them: from the cache file when it holds every converted weight
 * intact (`weightsFile`; `externalData` then holds only the computed constants), else made (read
 * and converted from the checkpoint, all in `externalData`) and the file (re)written.
 */
export function cachedWeights(
  weights: readonly ServedWeight[],
  key: CacheKey,
  options: WeightCacheOptions,
): {
  externalData: Array<{ path: string; data: Uint8Array }>;
  weightsFile?: WeightsFile;
  outcome: CacheOutcome;
  file: string;
} {
  const file = join(options.dir, `${idOf(key)}${SUFFIX}`);
  const wanted = weights.filter((w) => w.converted);
  const found = readCacheFile(file, key, wanted);
  if (found.status === 'hit') {
    if (found.vouched) touch(`${file}${STAMP}`);
    else writeStamp(file, found.seen, found.checkedAt - Number(found.seen.ctimeMs) >= SETTLED_MS);
    const at = new Map(wanted.map((w) => [w.path, found.at.get(w.name)!]));
    const externalData = weights.filter((w) => !w.converted).map((w) => ({ path: w.path, data: w.bytes() }));
    return { externalData, weightsFile: { file, at }, outcome: 'read', file };
  }
  const externalData = weights.map((w) => ({ path: w.path, data: w.bytes() }));
  const written = writeCacheFile(file, key, wanted, options);
  const outcome = !written ? 'not-written' : found.status === 'absent' ? 'written' : 'rebuilt';
  return { externalData, outcome, file };
}

type ReadResult =
  | {
      status: 'hit';
      at: Map<string, { offset: number; length: number }>;
      /** The file as it was before it was read. */
      seen: BigIntStats;
      /** Its stamp vouched for it: no checksum was computed. */
      vouched: boolean;
      /** When it was seen (ms since the epoch). */
      checkedAt: number;
    }
  | { status: 'absent' | 'unusable' };

/**
 * Checks a cache file: its frame, key and index, and every wanted weight's checksum unless its stamp
 * vouches for it (read through one reused buffer, so the check costs no memory); where each weight
 * lies in the file.
 */
function readCacheFile(file: string, key: CacheKey, wanted: readonly ServedWeight[]): ReadResult {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return { status: 'absent' };
  }
  try {
    const checkedAt = Date.now();
    const seen = fstatSync(fd, { bigint: true });
    const vouched = stampVouches(file, seen);
    const frame = readFrame(fd, file);
    if (!frame || keyText(frame.header.key) !== keyText(key)) return { status: 'unusable' };
    const index = new Map(frame.header.weights.map((e) => [e.name, e]));
    const checked = new Set<number>(); // weights that share bytes are stored once
    const at = new Map<string, { offset: number; length: number }>();
    const buffer = Buffer.allocUnsafe(CHECK_CHUNK);
    for (const w of wanted) {
      const e = index.get(w.name);
      if (!e || e.type !== w.type || e.dims.join() !== w.dims.join()) return { status: 'unusable' };
      const offset = frame.dataStart + e.offset;
      if (!vouched && !checked.has(offset)) {
        if (fileCrc32(fd, offset, e.length, buffer, file) !== e.crc) return { status: 'unusable' };
        checked.add(offset);
      }
      at.set(w.name, { offset, length: e.length });
    }
    return { status: 'hit', at, seen, vouched, checkedAt };
  } catch {
    return { status: 'unusable' };
  } finally {
    closeSync(fd);
  }
}

const CHECK_CHUNK = 8 << 20;

/** The CRC-32 of `length` bytes of a file from `offset`. */
function fileCrc32(fd: number, offset: number, length: number, buffer: Buffer, file: string): number {
  let crc = 0;
  for (let done = 0; done < length;) {
    const n = Math.min(buffer.length, length - done);
    if (readSync(fd, buffer, 0, n, offset + done) !== n) throw new Error(`${file}: short read`);
    crc = crc32(buffer.subarray(0, n), crc);
    done += n;
  }
  return crc;
}

/** The header of a file whose frame is whole (magic, header, length and end mark), else undefined. */
function readFrame(fd: number, file: string): { header: Header; dataStart: number } | undefined {
  const size = fstatSync(fd).size;
  if (size < MAGIC.length + 4 + END.length) return undefined;
  const start = readExact(fd, 0, MAGIC.length + 4, file);
  if (!MAGIC.equals(start.subarray(0, MAGIC.length))) return undefined;
  const headerBytes = Buffer.from(start.buffer, start.byteOffset, start.byteLength).readUInt32LE(MAGIC.length);
  if (MAGIC.length + 4 + headerBytes > size) return undefined;
  const header = JSON.parse(Buffer.from(readExact(fd, MAGIC.length + 4, headerBytes, file)).toString('utf8')) as Header;
  const dataStart = align(MAGIC.length + 4 + headerBytes);
  if (size !== dataStart + header.dataBytes + END.length) return undefined;
  if (!END.equals(readExact(fd, size - END.length, END.length, file))) return undefined;
  return { header, dataStart };
}

/** Writes a cache file whole (temporary name, fsync, rename), then keeps the folder in its bound. */
function writeCacheFile(
  file: string,
  key: CacheKey,
  weights: readonly ServedWeight[],
  options: WeightCacheOptions,
): boolean {
  const maxBytes = (options.maxMb ?? DEFAULT_CACHE_MB) * 1024 * 1024;
  const offsets = new Map<Uint8Array, number>();
  const entries: IndexEntry[] = [];
  let dataBytes = 0;
  for (const w of weights) {
    const data = w.bytes();
    let offset = offsets.get(data);
    if (offset === undefined) {
      offset = dataBytes;
      offsets.set(data, offset);
      dataBytes = align(offset + data.byteLength);
    }
    entries.push({ name: w.name, type: w.type, dims: [...w.dims], offset, length: data.byteLength, crc: crc32(data) });
  }
  const header = Buffer.from(JSON.stringify({ key, weights: entries, dataBytes } satisfies Header));
  const dataStart = align(MAGIC.length + 4 + header.length);
  const total = dataStart + dataBytes + END.length;
  if (total > maxBytes) return false;
  const temp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    mkdirSync(options.dir, { recursive: true });
    const fd = openSync(temp, 'w');
    let written: bigint;
    try {
      const length = Buffer.alloc(4);
      length.writeUInt32LE(header.length);
      writeAll(fd, MAGIC, 0);
      writeAll(fd, length, MAGIC.length);
      writeAll(fd, header, MAGIC.length + 4);
      for (const [data, offset] of offsets) writeAll(fd, data, dataStart + offset);
      writeAll(fd, END, dataStart + dataBytes);
      fsyncSync(fd);
      written = fstatSync(fd, { bigint: true }).ino;
    } finally {
      closeSync(fd);
    }
    renameSync(temp, file);
    syncFolder(options.dir);
    // Its checksums are those of what was written: vouched for, unless another writer's file came in meanwhile.
    const now = statSync(file, { bigint: true });
    if (now.ino === written) writeStamp(file, now, true);
  } catch {
    try {
      unlinkSync(temp);
    } catch {
      // never created
    }
    return false; // a cache that cannot be written only costs time at the next start
  }
  evict(options.dir, maxBytes, file);
  return true;
}

function writeAll(fd: number, data: Uint8Array, position: number): void {
  for (let done = 0; done < data.byteLength;) {
    done += writeSync(fd, data, done, Math.min(data.byteLength - done, 1 << 30), position + done);
  }
}

/** Makes a rename durable: the folder's entry is on disk too. */
function syncFolder(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // not every platform can fsync a folder
  }
}

/** Whether the file's stamp vouches for it as `seen` (unchanged since its checksums passed). */
function stampVouches(file: string, seen: BigIntStats): boolean {
  try {
    const stamp = JSON.parse(readFileSync(`${file}${STAMP}`, 'utf8')) as { vouches?: unknown; file?: unknown };
    return stamp.vouches === true && stamp.file === fileVersion(seen);
  } catch {
    return false; // none, or unreadable: the file is checked
  }
}

/**
 * Writes a file's stamp (whole: a temporary name, then a rename), marking it used now; one that
 * cannot be written only costs a check at the next load.
 */
function writeStamp(file: string, seen: BigIntStats, vouches: boolean): void {
  const temp = `${file}${STAMP}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    writeFileSync(temp, JSON.stringify({ file: fileVersion(seen), vouches }));
    renameSync(temp, `${file}${STAMP}`);
  } catch {
    remove(temp);
  }
}

/** Marks a stamp (so its file) used now: its mtime is the file's last use (atime is often not kept). */
function touch(file: string): void {
  try {
    const now = new Date();
    utimesSync(file, now, now);
  } catch {
    // removed meanwhile: nothing to keep fresh
  }
}

/**
 * Removes the least recently used files until the folder fits `maxBytes` (never `keep`, the file
 * just written), and temporary files left by writers that died.
 */
function evict(dir: string, maxBytes: number, keep?: string): string[] {
  const removed: string[] = [];
  const files = listFiles(dir);
  const now = Date.now();
  for (const f of files.filter((f) => f.temp && now - f.mtimeMs > STALE_TEMP_MS)) {
    if (remove(f.path)) removed.push(f.path);
  }
  removed.push(...removeOrphanStamps(dir));
  const cached = files.filter((f) => !f.temp).sort((a, b) => a.mtimeMs - b.mtimeMs);
  let total = cached.reduce((n, f) => n + f.bytes, 0);
  for (const f of cached) {
    if (total <= maxBytes) break;
    if (f.path === keep) continue;
    if (remove(f.path)) removed.push(f.path);
    total -= f.bytes;
  }
  return removed;
}

function listFiles(dir: string): Array<{ path: string; bytes: number; mtimeMs: number; temp: boolean }> {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const out = [];
  for (const name of names) {
    const temp = name.endsWith('.tmp') && name.includes(SUFFIX);
    if (!temp && !name.endsWith(SUFFIX)) continue;
    try {
      const path = join(dir, name);
      const s = statSync(path);
      out.push({ path, bytes: s.size, mtimeMs: temp ? s.mtimeMs : Math.max(s.mtimeMs, lastUse(path)), temp });
    } catch {
      // removed meanwhile
    }
  }
  return out;
}

/** Removes the stamps whose cache file is gone (removed by hand). */
function removeOrphanStamps(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const stamps = names.filter((n) => n.endsWith(`${SUFFIX}${STAMP}`));
  const orphans = stamps.filter((n) => !names.includes(n.slice(0, -STAMP.length))).map((n) => join(dir, n));
  return orphans.filter(remove);
}

/** When a cache file was last used: its stamp's mtime (0 without one). */
function lastUse(file: string): number {
  try {
    return statSync(`${file}${STAMP}`).mtimeMs;
  } catch {
    return 0;
  }
}

/** Removes a file (a cache file with its stamp). */
function remove(path: string): boolean {
  if (path.endsWith(SUFFIX)) rmSync(`${path}${STAMP}`, { force: true });
  try {
    unlinkSync(path);
    return true;
  } catch {
    return false; // removed meanwhile
  }
}

/** The cache's files, most recently used first. */
export function listCache(dir: string): CacheEntryInfo[] {
  return listFiles(dir)
    .filter((f) => !f.temp)
    .sort((a, b) => b.mtimeMs - a.mtimeMs)
    .map((f) => {
      const id = f.path.slice(join(dir, '/').length, -SUFFIX.length);
      const base = { id, file: f.path, bytes: f.bytes, lastUsed: new Date(f.mtimeMs) };
      let frame: ReturnType<typeof readFrame>;
      try {
        const fd = openSync(f.path, 'r');
        try {
          frame = readFrame(fd, f.path);
        } finally {
          closeSync(fd);
        }
      } catch {
        frame = undefined;
      }
      if (!frame)
        return { ...base, model: '?', format: { float: 'float32', quantize: 'none', block: 0 }, valid: false };
      return { ...base, model: frame.header.key.model, format: frame.header.key.format, valid: true };
    });
}

/** Removes cache files by id (or a unique prefix of one); all of them (temporary files too) with `all`. */
export function removeFromCache(dir: string, ids: readonly string[], all = false): string[] {
  const files = listFiles(dir);
  if (all) return [...files.filter((f) => remove(f.path)).map((f) => f.path), ...removeOrphanStamps(dir)];
  const chosen = ids.map((id) => {
    const matches = files.filter((f) => !f.temp && f.path.slice(join(dir, '/').length).startsWith(id));
    if (matches.length === 0) throw new Error(`no cache entry "${id}" (see versa cache ls)`);
    if (matches.length > 1) throw new Error(`"${id}" matches ${matches.length} cache entries: give more of its id`);
    return matches[0].path;
  });
  return chosen.filter(remove);
}

const align = (n: number) => Math.ceil(n / ALIGN) * ALIGN;

/** CRC-32 (zlib's), continuing from `crc`: native from Node 20.15, a table otherwise. */
const crc32: (data: Uint8Array, crc?: number) => number =
  typeof (zlib as { crc32?: unknown }).crc32 === 'function'
    ? (data, crc = 0) => (zlib as unknown as { crc32(d: Uint8Array, c: number): number }).crc32(data, crc)
    : tableCrc32;

let table: Uint32Array | undefined;
function tableCrc32(data: Uint8Array, initial = 0): number {
  if (!table) {
    table = new Uint32Array(256);
    for (let i = 0; i < 256; i++) {
      let c = i;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      table[i] = c >>> 0;
    }
  }
  let crc = (initial ^ 0xffffffff) >>> 0;
  for (let i = 0; i < data.length; i++) crc = table[(crc ^ data[i]) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}
