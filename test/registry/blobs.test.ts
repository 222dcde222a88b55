import { mkdirSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FolderBlobStore } from '../../registry/blobs/folder.ts';
import { BlobIntegrityError, type BlobStore } from '../../registry/blobs/store.ts';
import { sha256Hex } from '../../registry/hash.ts';
import { BACKENDS, startRegistry, type TestRegistry } from '../helpers/registry.ts';

const MiB = 1024 * 1024;

function bytes(n: number, seed = 1): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

/** A stream of `data` in uneven chunks, like a network body. */
function chunked(data: Uint8Array, sizes = [1, 7, 65536, 3]): ReadableStream<Uint8Array> {
  let at = 0;
  let i = 0;
  return new ReadableStream({
    pull(controller) {
      if (at >= data.length) return controller.close();
      const n = sizes[i++ % sizes.length];
      controller.enqueue(data.slice(at, at + n));
      at += n;
    },
  });
}

async function read(blobs: BlobStore, sha256: string): Promise<Uint8Array> {
  const blob = await blobs.get(sha256);
  if (!blob) throw new Error('missing');
  return new Uint8Array(await new Response(blob.body).arrayBuffer());
}

async function listed(blobs: BlobStore): Promise<string[]> {
  const out: string[] = [];
  for await (const b of blobs.list()) out.push(b.sha256);
  return out.sort();
}

// The same contract on both stores: the folder (Node) and R2 (wrangler's local runtime).
describe.each(BACKENDS)('blob store contract (%s)', (backend) => {
  let reg: TestRegistry;
  let blobs: BlobStore;

  beforeAll(async () => {
    reg = await startRegistry(backend);
    blobs = reg.blobs;
  });
  afterAll(() => reg?.close());

  it('stores content under its sha256, streamed; dedupes; deletes', async () => {
    const data = bytes(200_000, 3);
    const sha = await sha256Hex(data);
    const put = await blobs.put(chunked(data));
    expect(put).toEqual({ sha256: sha, bytes: data.length, created: true });
    expect(await blobs.has(sha)).toBe(true);
    expect(Buffer.from(await read(blobs, sha)).equals(Buffer.from(data))).toBe(true);
    expect((await blobs.get(sha))!.bytes).toBe(data.length);
    expect(await blobs.put(data)).toEqual({ sha256: sha, bytes: data.length, created: false });
    expect(await listed(blobs)).toEqual([sha]);
    await blobs.delete(sha);
    expect(await blobs.has(sha)).toBe(false);
    expect(await blobs.get(sha)).toBeNull();
  });

  it('empty content is a blob too', async () => {
    const put = await blobs.put(new Uint8Array(0));
    expect(put.sha256).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    expect((await read(blobs, put.sha256)).length).toBe(0);
    await blobs.delete(put.sha256);
  });

  it('refuses content that does not match a declared sha256, storing nothing', async () => {
    const data = bytes(1000, 5);
    await expect(blobs.put(data, { sha256: 'f'.repeat(64) })).rejects.toBeInstanceOf(BlobIntegrityError);
    expect(await listed(blobs)).toEqual([]);
    expect(await reg.partials()).toBe(0);
  });

  it('content larger than one part goes up in parts (R2 multipart), with and without a declared sha256', async () => {
    const data = bytes(5 * MiB + 12345, 7);
    const sha = await sha256Hex(data);
    expect(await blobs.put(chunked(data, [300_000, 1, 4096]))).toEqual({
      sha256: sha,
      bytes: data.length,
      created: true,
    });
    expect(await sha256Hex(await read(blobs, sha))).toBe(sha);
    expect(await reg.partials()).toBe(0);
    await blobs.delete(sha);
    expect(await blobs.put(chunked(data), { sha256: sha })).toEqual({ sha256: sha, bytes: data.length, created: true });
    expect(await blobs.put(chunked(data), { sha256: sha })).toEqual({
      sha256: sha,
      bytes: data.length,
      created: false,
    });
    await expect(blobs.put(chunked(data), { sha256: '0'.repeat(64) })).rejects.toBeInstanceOf(BlobIntegrityError);
    expect(await listed(blobs)).toEqual([sha]);
    expect(await reg.partials()).toBe(0);
    await blobs.delete(sha);
  });

  it('a stream that fails mid-way stores nothing', async () => {
    let n = 0;
    const failing = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (n++ < 3) controller.enqueue(bytes(MiB * 2, n));
        else controller.error(new Error('client went away'));
      },
    });
    await expect(blobs.put(failing)).rejects.toThrow('client went away');
    expect(await listed(blobs)).toEqual([]);
    expect(await reg.partials()).toBe(0);
  });

  it('never builds a key from anything but a sha256', async () => {
    for (const bad of ['../../etc/passwd', `${'a'.repeat(63)}/`, 'A'.repeat(64), '']) {
      await expect(blobs.get(bad)).rejects.toThrow(/not a sha256/);
      await expect(blobs.delete(bad)).rejects.toThrow(/not a sha256/);
      await expect(blobs.has(bad)).rejects.toThrow(/not a sha256/);
    }
  });
});

describe('folder blob store', () => {
  it('keeps blobs inside its root and sweeps old partial uploads', async () => {
    const root = mkdtempSync(join(tmpdir(), 'versa-folder-'));
    const store = new FolderBlobStore(root);
    const { sha256 } = await store.put(bytes(10));
    expect(store.pathOf(sha256).startsWith(`${root}/sha256/${sha256.slice(0, 2)}/`)).toBe(true);
    mkdirSync(join(root, 'partial'), { recursive: true });
    writeFileSync(join(root, 'partial', 'crashed'), 'half an upload');
    writeFileSync(join(root, 'partial', 'in-flight'), 'still coming');
    const old = new Date(Date.now() - 3 * 3600_000);
    utimesSync(join(root, 'partial', 'crashed'), old, old);
    expect(await store.sweepPartial(new Date(Date.now() - 3600_000))).toBe(1);
    expect(readdirSync(join(root, 'partial'))).toEqual(['in-flight']);
    rmSync(root, { recursive: true, force: true });
  });
});
