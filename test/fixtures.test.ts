import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fixture } from './helpers/fixtures.ts';

/**
 * The suite is self-contained (CONTRIBUTING, "Fixtures and goldens"): a fresh clone runs every test.
 * A test that reads files from beside the repository (../shared) would be skipped or fail there.
 */
const ROOT = resolve(import.meta.dirname, '..');

function testSources(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? testSources(join(dir, e.name)) : /\.(ts|js|mjs)$/.test(e.name) ? [join(dir, e.name)] : [],
  );
}

/** Paths a file builds from its own folder: `resolve|join(import.meta.dirname, '<literal>', ...)`. */
function pathsFromOwnFolder(file: string): string[] {
  const text = readFileSync(join(ROOT, file), 'utf8');
  const call = /(?:resolve|join)\(\s*import\.meta\.dirname\s*,\s*((?:'[^']*'\s*,?\s*)+)\)/g;
  return [...text.matchAll(call)].map((m) =>
    resolve(join(ROOT, dirname(file)), ...[...m[1].matchAll(/'([^']*)'/g)].map((s) => s[1])),
  );
}

describe('test fixtures', () => {
  it('every path a test file names from its own folder lies inside the repository', () => {
    const outside = testSources('test').flatMap((file) =>
      pathsFromOwnFolder(file)
        .filter((p) => relative(ROOT, p).startsWith('..'))
        .map((p) => `${file} reads ${relative(ROOT, p)}`),
    );
    expect(outside).toEqual([]);
  });

  it('a missing fixture throws, naming the file and where the goldens live', () => {
    expect(() => fixture('archs', 'no-such-arch', 'config.json')).toThrow(
      /missing test fixture test\/fixtures\/archs\/no-such-arch\/config\.json: .*test\/fixtures\/README\.md/,
    );
    expect(fixture('archs', 'qwen3', 'config.json')).toBe(join(ROOT, 'test/fixtures/archs/qwen3/config.json'));
  });
});
