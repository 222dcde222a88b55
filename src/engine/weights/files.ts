import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { parseHeader, headerLength, toFloat32, SafetensorsError, type SafetensorsHeader, type TensorInfo } from './safetensors.ts';
import type { Tensor } from './tensor.ts';

/** A safetensors file on disk: the header is read and validated at open, tensors on demand. */
export class SafetensorsFile {
  private constructor(
    readonly path: string,
    private fd: number,
    readonly header: SafetensorsHeader,
  ) {}

  static open(path: string): SafetensorsFile {
    const fd = openSync(path, 'r');
    try {
      const size = fstatSync(fd).size;
      const first8 = readExact(fd, 0, Math.min(8, size));
      const n = headerLength(first8, size);
      const prefix = readExact(fd, 0, 8 + n);
      return new SafetensorsFile(path, fd, parseHeader(prefix, size));
    } catch (e) {
      closeSync(fd);
      if (e instanceof SafetensorsError) throw new SafetensorsError(`${path}: ${e.message}`);
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

  /** Reads one tensor, converted to float32. */
  read(name: string): Tensor {
    const t = this.info(name);
    const bytes = readExact(this.fd, this.header.dataOffset + t.begin, t.end - t.begin);
    return { dims: [...t.shape], data: toFloat32(bytes, t.dtype, `${this.path}: ${name}`) };
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}

function readExact(fd: number, position: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const n = readSync(fd, out, done, length - done, position + done);
    if (n === 0) throw new SafetensorsError(`unexpected end of file at byte ${position + done}`);
    done += n;
  }
  return out;
}
