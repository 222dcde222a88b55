import { sha256Hex } from './hash.ts';
import type { FileEntry } from './schema.ts';

/**
 * The sha256 that identifies a version's whole content (all its files, not just the weights: a
 * LoRA's scale lives in adapter_config.json). It is the sha256 of the version's manifest, one
 * line `<file sha256><two spaces><file name>\n` per file, sorted by name (byte order): exactly
 * what `sha256sum` prints for those files, so anyone can recompute it with
 * `sha256sum $(ls | LC_ALL=C sort) | sha256sum`.
 */
export function manifestText(files: readonly FileEntry[]): string {
  return [...files]
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((f) => `${f.sha256}  ${f.name}\n`)
    .join('');
}

export function manifestDigest(files: readonly FileEntry[]): Promise<string> {
  return sha256Hex(manifestText(files));
}
