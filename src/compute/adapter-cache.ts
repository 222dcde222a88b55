import { createHash } from 'node:crypto';
import type { EngineClient } from '../engine/worker/client.ts';
import type { AdapterManifest } from '../engine/adapters/format.ts';
import type { AdapterRef } from '../protocol/compute.ts';
import { manifestText } from '../engine/adapters/manifest.ts';
import { BlobFetchError, type BlobSource } from './blob-source.ts';

export class IntegrityError extends Error {
  override name = 'IntegrityError';
}

interface Entry {
  key: string;
  bytes: number;
  users: number;
  lastUsed: number;
  manifest: AdapterManifest;
}

export interface CacheEvents {
  hit(adapter: string): void;
  miss(adapter: string): void;
  load(adapter: string): void;
  evict(adapter: string): void;
  bytes(total: number): void;
}

/**
 * Adapters resident in the engine, LRU by bytes under a budget. Files are fetched by sha256 and
 * verified before the engine sees them; a mismatch is refused and never cached. A burst of
 * requests for one cold adapter shares a single load.
 */
export class AdapterCache {
  private readonly entries = new Map<string, Entry>();
  private readonly loading = new Map<string, Promise<Entry>>();
  private clock = 0;

  constructor(
    private readonly engine: EngineClient,
    private readonly source: BlobSource,
    private readonly budgetBytes: number,
    private readonly events?: CacheEvents,
  ) {}

  get bytes(): number {
    let total = 0;
    for (const e of this.entries.values()) total += e.bytes;
    return total;
  }

  has(ref: AdapterRef): boolean {
    return this.entries.has(keyOf(ref));
  }

  /** Makes the adapter resident and marks it in use; call the returned release when done. */
  async acquire(ref: AdapterRef): Promise<{ engineId: string; release: () => void }> {
    const key = keyOf(ref);
    let entry = this.entries.get(key);
    if (entry) this.events?.hit(ref.id);
    else {
      this.events?.miss(ref.id);
      let pending = this.loading.get(key);
      if (!pending) {
        pending = this.load(ref, key).finally(() => this.loading.delete(key));
        this.loading.set(key, pending);
      }
      entry = await pending;
    }
    entry.users++;
    entry.lastUsed = ++this.clock;
    this.evict();
    let released = false;
    return {
      engineId: key,
      release: () => {
        if (released) return;
        released = true;
        entry!.users--;
        this.evict();
      },
    };
  }

  private async load(ref: AdapterRef, key: string): Promise<Entry> {
    // The version's sha256 is its manifest's: files that do not add up to it are not this version.
    const manifest = versionSha256(ref.files);
    if (manifest !== ref.sha256) {
      throw new IntegrityError(
        `${ref.id}: its files' manifest hashes to ${manifest}, not the version's sha256 ${ref.sha256}`,
      );
    }
    const files = new Map<string, Uint8Array>();
    await Promise.all(
      ref.files.map(async (file) => {
        const bytes = await this.source.read(ref, file);
        const digest = createHash('sha256').update(bytes).digest('hex');
        if (digest !== file.sha256)
          throw new IntegrityError(`${ref.id}: ${file.name} has sha256 ${digest}, expected ${file.sha256}`);
        if (bytes.length !== file.bytes)
          throw new IntegrityError(`${ref.id}: ${file.name} has ${bytes.length} bytes, expected ${file.bytes}`);
        files.set(file.name, bytes);
      }),
    );
    const configBytes = files.get('adapter_config.json');
    let config: Record<string, unknown> | undefined;
    if (configBytes) {
      try {
        config = JSON.parse(new TextDecoder().decode(configBytes));
      } catch {
        throw new BlobFetchError(`${ref.id}: adapter_config.json is not valid JSON`);
      }
    }
    const bytes = ref.files.reduce((n, f) => n + f.bytes, 0);
    const described = await this.engine.addAdapter(key, { config, files });
    const entry: Entry = { key, bytes, users: 0, lastUsed: ++this.clock, manifest: described };
    this.entries.set(key, entry);
    this.events?.load(ref.id);
    return entry;
  }

  /** Drops least recently used adapters that no request is using until under budget. */
  private evict(): void {
    let total = this.bytes;
    if (total <= this.budgetBytes) return this.events?.bytes(total);
    const idle = [...this.entries.values()].filter((e) => e.users === 0).sort((a, b) => a.lastUsed - b.lastUsed);
    for (const e of idle) {
      if (total <= this.budgetBytes) break;
      this.entries.delete(e.key);
      total -= e.bytes;
      void this.engine.removeAdapter(e.key);
      this.events?.evict(e.key.split('#')[0]);
    }
    this.events?.bytes(total);
  }
}

function keyOf(ref: AdapterRef): string {
  return `${ref.id}#${ref.sha256}`;
}

/** A version's sha256: its manifest's (see manifestText), as the registry assigns it. */
export function versionSha256(files: ReadonlyArray<{ name: string; sha256: string }>): string {
  return createHash('sha256').update(manifestText(files)).digest('hex');
}
