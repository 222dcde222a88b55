import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateKey, keyFormatProblem } from '../../registry/auth.ts';

/** VERSA_API_KEY (or `given`) checked before any slow start-up work; undefined when unset. */
export function checkedApiKey(given: string | undefined = process.env.VERSA_API_KEY): string | undefined {
  if (given === undefined || given === '') return undefined;
  const problem = keyFormatProblem(given);
  if (problem) throw new Error(`VERSA_API_KEY: ${problem}`);
  return given;
}

/** The local admin key if `versa start` or `versa edge` has made one under `home`. */
export function existingLocalKey(home: string): string | undefined {
  const path = join(home, 'admin-key');
  return existsSync(path) ? readFileSync(path, 'utf8').trim() : undefined;
}

/** The local admin key, made once and kept (owner-readable only) under VERSA_HOME. */
export function localKey(home: string): string {
  const existing = existingLocalKey(home);
  if (existing) return existing;
  const path = join(home, 'admin-key');
  const key = generateKey();
  writeFileSync(path, `${key}\n`, { mode: 0o600 });
  chmodSync(path, 0o600);
  return key;
}
