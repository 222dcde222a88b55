import { manifestText } from '../src/engine/adapters/manifest.ts';
import { sha256Hex } from './hash.ts';
import type { FileEntry } from './schema.ts';

/** The sha256 that identifies a version's whole content (see manifestText). */
export function manifestDigest(files: readonly FileEntry[]): Promise<string> {
  return sha256Hex(manifestText(files));
}

/** What a version's behavior digest covers: its files, its base's files, its own chat template. */
interface BehaviorInputs {
  /** The files' digest (manifestDigest). */
  sha256: string;
  baseSha256: string;
  chatTemplate: string | null;
}

/**
 * The sha256 of what a version does: one `<sha256>  <what>\n` line each for its files (their
 * manifest digest, which covers the task tokens and LoRA scale too), its base version's files and,
 * when it has one, its own chat template (UTF-8). Re-publishing the same files with another
 * template or on another base gives another behavior digest; `sha256` stays the files' digest,
 * which is what a compute node checks.
 */
export async function behaviorDigest(v: BehaviorInputs): Promise<string> {
  let text = `${v.sha256}  files\n${v.baseSha256}  base\n`;
  if (v.chatTemplate !== null) text += `${await sha256Hex(v.chatTemplate)}  chat_template\n`;
  return sha256Hex(text);
}
