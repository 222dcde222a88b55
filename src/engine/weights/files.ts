import { closeSync, fstatSync, openSync, readSync, type BigIntStats } from 'node:fs';
import { parseHeader, headerLength, SafetensorsError, type SafetensorsHeader, type TensorInfo } from './safetensors.ts';
import type { StoredTensor, WeightDtype } from './stored.ts';

/** A safetensors file on disk: the header is read and validated at open, tensors on demand. */
export class SafetensorsFile {
  private constructor(
    readonly path: string,
    private fd: number,
    readonly header: SafetensorsHeader,
    readonly size: number,
  ) {}

  static open(path: string): SafetensorsFile {
    const fd = openSync(path, 'r');
    try {
      const size = fstatSync(fd).size;
      const first8 = readExact(fd, 0, Math.min(8, size), path);
      const n = headerLength(first8, size);
      const prefix = readExact(fd, 0, 8 + n, path);
      return new SafetensorsFile(path, fd, parseHeader(prefix, size), size);
    } catch (e) {
      closeSync(fd);
      if (e instanceof SafetensorsError && !e.message.startsWith(path))
        throw new SafetensorsError(`${path}: ${e.message}`);
      throw e;
    }
  }

  get names(): string[] {
    return [...this.header.tensors.keys()];
  }

  info(name: string): TensorInfo {
    const t = this.header.tensors.get(name);
    if (!t) throw new SafetensorsError(`${this.path}: no tensor named "${name}"`);
    return t;
  }

  /** One tensor as stored, read (one pread into its own buffer) when asked for. */
  stored(name: string): StoredTensor {
    const t = this.info(name);
    if (t.dtype !== 'F32' && t.dtype !== 'F16' && t.dtype !== 'BF16') {
      throw new SafetensorsError(
        `${this.path}: ${name}: dtype ${t.dtype} is not supported for weights (F32, F16 or BF16)`,
      );
    }
    return { dims: t.shape, dtype: t.dtype as WeightDtype, bytes: () => this.rawBytes(t) };
  }

  private rawBytes(t: TensorInfo): Uint8Array {
    if (this.fd < 0) throw new Error(`${this.path} is closed`);
    return readExact(this.fd, this.header.dataOffset + t.begin, t.end - t.begin, this.path);
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}

/** Reads `length` bytes at `position` into a fresh, unpooled (so 8-byte aligned) buffer. */
export function readExact(fd: number, position: number, length: number, path: string): Uint8Array {
  const out = Buffer.allocUnsafeSlow(length);
  let done = 0;
  while (done < length) {
    // readSync moves at most 2 GiB per call.
    const n = readSync(fd, out, done, Math.min(length - done, 1 << 30), position + done);
    if (n === 0) throw new SafetensorsError(`${path}: unexpected end of file at byte ${position + done} (truncated?)`);
    done += n;
  }
  return out;
}

/**
 * A file's version as a stat sees it (device, inode, size, mtime and ctime in ns): a fact computed
 * from its bytes holds while this is unchanged, since any write through the file system sets its
 * ctime to the time of the write.
 */
export function fileVersion(s: BigIntStats): string {
  return [s.dev, s.ino, s.size, s.mtimeNs, s.ctimeNs].join(':');
}
