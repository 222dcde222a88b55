import { existsSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';

/**
 * The golden fixtures (stories260k/, tiny-gpt2/, archs/), committed under test/fixtures/ (see its README),
 * so every test runs on a fresh clone. Nothing is skipped: a missing file fails the test that needs it.
 */
const FIXTURES = resolve(import.meta.dirname, '../fixtures');

/** The path of a fixture file or folder; throws, naming it, when it is not there. */
export function fixture(...parts: string[]): string {
  const path = join(FIXTURES, ...parts);
  if (!existsSync(path)) {
    throw new Error(
      `missing test fixture ${relative(resolve(import.meta.dirname, '../..'), path)}: ` +
        'the goldens are committed under test/fixtures/ ' +
        '(see test/fixtures/README.md); restore it from git',
    );
  }
  return path;
}

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
