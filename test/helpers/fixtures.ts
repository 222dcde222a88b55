import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** ../shared/fixtures next to the repository (CI puts it there); suites skip when it is absent. */
export const FIXTURES = resolve(import.meta.dirname, '../../../shared/fixtures');
export const hasFixtures = existsSync(join(FIXTURES, 'README.md'));
if (!hasFixtures) console.warn(`[versa tests] ${FIXTURES} not found: fixture conformance tests are skipped`);

export const fixture = (...parts: string[]) => join(FIXTURES, ...parts);

export function readJson<T = any>(...parts: string[]): T {
  return JSON.parse(readFileSync(fixture(...parts), 'utf8'));
}

export function readF32(...parts: string[]): Float32Array {
  const buf = readFileSync(fixture(...parts));
  return new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
}

/** Largest absolute difference between two equally long vectors (NaN in `expected` is skipped). */
export function maxAbsDiff(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) throw new Error(`length ${actual.length} != ${expected.length}`);
  let max = 0;
  for (let i = 0; i < actual.length; i++) {
    if (Number.isNaN(expected[i])) continue;
    const d = Math.abs(actual[i] - expected[i]);
    if (!(d <= max)) max = d; // NaN in actual propagates as a failure
  }
  return max;
}
