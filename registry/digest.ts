import { manifestText } from '../src/engine/adapters/manifest.ts';
import { sha256Hex } from './hash.ts';
import type { FileEntry } from './schema.ts';

/** The sha256 that identifies a version's whole content (see manifestText). */
export function manifestDigest(files: readonly FileEntry[]): Promise<string> {
  return sha256Hex(manifestText(files));
}
