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

/** The local admin key, made once and kept (owner-readable only) under VERSA_HOME. */
export function localKey(home: string): string {
  const path = join(home, 'admin-key');
  if (existsSync(path)) return readFileSync(path, 'utf8').trim();
  const key = generateKey();
  writeFileSync(path, `${key}\n`, { mode: 0o600 });
  chmodSync(path, 0o600);
  return key;
}
