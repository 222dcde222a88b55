import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { BlobStore, PutOptions } from '../../registry/blobs/store.ts';
import { leaseBlob } from '../../registry/queries/blobs.ts';
import { sweepOrphans } from '../../registry/sweep.ts';
import { registerBase, toyConfig, vlmAdapter, type AdapterFiles } from '../helpers/adapters.ts';
import { BACKENDS, startRegistry, type TestRegistry } from '../helpers/registry.ts';

/**
 * Blobs are shared by content, so one upload's cleanup, or the orphan sweep, must never delete a
 * blob another upload in flight is about to commit. Each race is driven step by step: request
 * bodies are streamed by the test and held open, and the store reports when a put reserved or
 * finished and when a delete began (no timing involved).
 */

/** Promises for store events, by sha256. */
class Signals {
  private readonly waiting = new Map<string, Array<() => void>>();
  private readonly seen = new Map<string, number>();
  fire(name: string): void {
    this.seen.set(name, (this.seen.get(name) ?? 0) + 1);
    for (const resolve of this.waiting.get(name) ?? []) resolve();
    this.waiting.delete(name);
  }
  /** Resolves when `name` has fired `times` times in all. */
  async wait(name: string, times = 1): Promise<void> {
    while ((this.seen.get(name) ?? 0) < times)
      await new Promise<void>((resolve) => this.waiting.set(name, [...(this.waiting.get(name) ?? []), resolve]));
  }
}

/** The real store, reporting its steps; deletes can be held at their start. */
class ObservedBlobs implements BlobStore {
  readonly signals = new Signals();
  /** Deletes of these blobs wait for their promise. */
  readonly heldDeletes = new Map<string, Promise<void>>();
  constructor(private readonly inner: BlobStore) {}
  async put(body: Parameters<BlobStore['put']>[0], options: PutOptions = {}) {
    const reserve = async (sha256: string) => {
      this.signals.fire(`reserve:${sha256}`);
      await options.reserve?.(sha256);
    };
    const blob = await this.inner.put(body, { ...options, reserve });
    this.signals.fire(`put:${blob.sha256}`);
    return blob;
  }
  get = (sha256: string) => this.inner.get(sha256);
  has = (sha256: string) => this.inner.has(sha256);
  async delete(sha256: string) {
    this.signals.fire(`delete:${sha256}`);
    await this.heldDeletes.get(sha256);
    await this.inner.delete(sha256);
  }
  list = () => this.inner.list();
  sweepPartial = (before: Date) => this.inner.sweepPartial(before);
}

const enc = new TextEncoder();

/**
 * A publish whose multipart body the test writes: everything but the closing delimiter goes at
 * once; then either `finish()` (a valid end) or `fail()` (a refused extra file, a 400).
 */
function heldPublish(reg: TestRegistry, adapter: string, fields: Record<string, string>, files: AdapterFiles) {
  const boundary = `held-${Math.random().toString(36).slice(2)}`;
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const body = new ReadableStream<Uint8Array>({ start: (c) => void (controller = c) });
  for (const [name, value] of Object.entries(fields))
    controller.enqueue(
      enc.encode(`--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`),
    );
  for (const f of files) {
    controller.enqueue(
      enc.encode(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${f.name}"\r\n\r\n`),
    );
    controller.enqueue(f.bytes);
    controller.enqueue(enc.encode('\r\n'));
  }
  // The next delimiter ends the last file's part, so the server stores it and then waits here.
  controller.enqueue(enc.encode(`--${boundary}`));
  const response = reg.fetch(`/v1/adapters/${adapter}/versions`, {
    method: 'POST',
    headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
    body,
    duplex: 'half',
  } as RequestInit);
  return {
    response,
    finish() {
      controller.enqueue(enc.encode('--\r\n'));
      controller.close();
      return response;
    },
    fail() {
      controller.enqueue(
        enc.encode(
          `\r\nContent-Disposition: form-data; name="file"; filename="weights.bin"\r\n\r\nxx\r\n--${boundary}--\r\n`,
        ),
      );
      controller.close();
      return response;
    },
  };
}

describe.each(BACKENDS)('blob lifetimes (%s)', (backend) => {
  let reg: TestRegistry;
  let store: ObservedBlobs;
  const config = toyConfig();

  beforeAll(async () => {
    reg = await startRegistry(backend, { wrapBlobs: (b) => (store = new ObservedBlobs(b)) });
    await registerBase(reg, 'toy');
  });
  afterAll(async () => {
    vi.restoreAllMocks();
    await reg?.close();
  });

  async function download(adapter: string, version: number, file: string): Promise<Uint8Array> {
    const res = await reg.fetch(`/v1/adapters/${adapter}/versions/${version}/files/${file}`);
    expect(res.status, `${adapter}@${version}/${file}`).toBe(200);
    return new Uint8Array(await res.arrayBuffer());
  }

  async function sha256Of(bytes: Uint8Array): Promise<string> {
    const digest = await crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>);
    return Buffer.from(digest).toString('hex');
  }

  it("a failed upload's cleanup keeps a blob another upload in flight deduplicated against", async () => {
    const files = vlmAdapter(config, { seed: 11 });
    const weights = await sha256Of(files[1].bytes);
    // B stores the weights first (it creates the blob) and waits.
    const b = heldPublish(reg, 'race-b', { base: 'toy@1' }, files);
    await store.signals.wait(`put:${weights}`, 1);
    // A stores the same weights (deduplicated against B's blob) and waits.
    const a = heldPublish(reg, 'race-a', { base: 'toy@1' }, files);
    await store.signals.wait(`put:${weights}`, 2);
    // B fails; its cleanup runs before its answer.
    expect((await b.fail()).status).toBe(400);
    // A commits, and its version's blob is there.
    const res = await a.finish();
    expect(res.status).toBe(201);
    expect(await download('race-a', 1, 'adapter.safetensors')).toEqual(files[1].bytes);
    expect((await reg.fetch('/v1/adapters/race-b')).status).toBe(404);
  });

  it('a failed upload still removes what only it held', async () => {
    const files = vlmAdapter(config, { seed: 12 });
    const weights = await sha256Of(files[1].bytes);
    const b = heldPublish(reg, 'lonely', { base: 'toy@1' }, files);
    await store.signals.wait(`put:${weights}`);
    expect((await b.fail()).status).toBe(400);
    expect(await reg.blobs.has(weights)).toBe(false);
  });

  it('the sweep keeps an old orphan blob that an upload in flight reused', async () => {
    const files = vlmAdapter(config, { seed: 13 });
    const weights = await sha256Of(files[1].bytes);
    // What a crashed publish left: the same content, referenced by nothing.
    await reg.blobs.put(files[1].bytes);
    const a = heldPublish(reg, 'reuser', { base: 'toy@1' }, files);
    await store.signals.wait(`put:${weights}`);
    // The sweep runs with no grace: the orphan is old enough, but the upload holds it.
    await sweepOrphans(reg.registry.db, store, { graceMs: 0 });
    expect(await reg.blobs.has(weights)).toBe(true);
    expect((await a.finish()).status).toBe(201);
    expect(await download('reuser', 1, 'adapter.safetensors')).toEqual(files[1].bytes);
  });

  it('an upload that reuses a blob the sweep is deleting stores it again', async () => {
    const files = vlmAdapter(config, { seed: 14 });
    const weights = await sha256Of(files[1].bytes);
    await reg.blobs.put(files[1].bytes);
    let release!: () => void;
    store.heldDeletes.set(weights, new Promise<void>((r) => (release = r)));
    try {
      // The sweep has claimed the orphan and is about to delete it.
      const sweep = sweepOrphans(reg.registry.db, store, { graceMs: 0 });
      await store.signals.wait(`delete:${weights}`);
      // The upload reaches the same content and asks for its lease: it must wait for the delete.
      const a = heldPublish(reg, 'late', { base: 'toy@1' }, files);
      await store.signals.wait(`reserve:${weights}`);
      release();
      await sweep;
      expect((await a.finish()).status).toBe(201);
    } finally {
      release();
      store.heldDeletes.delete(weights);
    }
    expect(await download('late', 1, 'adapter.safetensors')).toEqual(files[1].bytes);
  });

  it("a crashed upload's blobs go once its leases lapse, after minutes, not an hour", async () => {
    const orphan = await reg.blobs.put(enc.encode('what a crashed upload stored'));
    await leaseBlob(reg.registry.db, orphan.sha256, 'up_crashed');
    const minutes = (n: number) => ({ now: new Date(Date.now() + n * 60_000) });
    // Its lease still holds it, however old the blob.
    expect((await sweepOrphans(reg.registry.db, reg.blobs, { ...minutes(1), graceMs: 0 })).blobs).toBe(0);
    expect(await reg.blobs.has(orphan.sha256)).toBe(true);
    // Leases last 5 minutes without renewal; the default grace is 5 minutes.
    expect((await sweepOrphans(reg.registry.db, reg.blobs, minutes(6))).blobs).toBe(1);
    expect(await reg.blobs.has(orphan.sha256)).toBe(false);
  });
});
