import { execFile } from 'node:child_process';
import {
  cpSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { fixture } from '../helpers/fixtures.ts';

const REPO_ROOT = resolve(import.meta.dirname, '../..');

/**
 * A checkout of the CLI in a temporary folder: its own sources (so they can be edited) and a node_modules
 * of links to this repository's packages, less those in `without`.
 */
function checkout(without: string[] = []) {
  const dir = mkdtempSync(join(tmpdir(), 'versa-checkout-'));
  for (const path of ['bin', 'src', 'registry', 'scripts/build.mjs', 'package.json']) {
    cpSync(join(REPO_ROOT, path), join(dir, path), { recursive: true });
  }
  symlinkSync(join(REPO_ROOT, 'migrations'), join(dir, 'migrations'));
  mkdirSync(join(dir, 'node_modules'));
  for (const name of readdirSync(join(REPO_ROOT, 'node_modules'))) {
    if (!without.includes(name)) symlinkSync(join(REPO_ROOT, 'node_modules', name), join(dir, 'node_modules', name));
  }
  return dir;
}

function versaIn(dir: string, args: string[]) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((done) => {
    execFile(process.execPath, [join(dir, 'bin/versa.js'), ...args], { cwd: dir }, (e, stdout, stderr) =>
      done({ code: e ? (typeof e.code === 'number' ? e.code : 1) : 0, stdout, stderr }),
    );
  });
}

/** The CLI's builds in dist/ (beside them, dist/ui/: the dashboard's bundle). */
const builds = (dir: string) => readdirSync(join(dir, 'dist')).filter((name) => !name.startsWith('.') && name !== 'ui');

/** bin/versa.js runs the JavaScript compiled from the sources into dist/ (scripts/build.mjs), never a stale one. */
describe('the compiled CLI', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  it('runs, worker threads included, without a TypeScript loader installed', async () => {
    const dir = checkout(['tsx']);
    dirs.push(dir);
    const version = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')).version;
    expect(await versaIn(dir, ['--version'])).toEqual({ code: 0, stdout: `${version}\n`, stderr: '' });
    expect(builds(dir)).toHaveLength(1);
    // The dashboard's bundle, where the compiled Node edge looks for it (dist/<hash>/dist/ui is dist/ui).
    const bundle = readFileSync(join(dir, 'dist/ui/app.js'), 'utf8');
    expect(bundle).toContain('// src/edge/ui/client/app.ts');
    expect(readFileSync(join(dir, 'dist', builds(dir)[0], 'dist/ui/app.js'), 'utf8')).toBe(bundle);

    // the engine and its tokenizer run in worker threads, each started from the compiled bootstrap
    const gen = await versaIn(dir, ['generate', '--model', fixture('stories260k/model.bin'), '--max-tokens', '8']);
    expect(gen.stderr).toBe('');
    expect(gen.code).toBe(0);
    expect(gen.stdout.trim().length).toBeGreaterThan(0);
  });

  it('recompiles when a source changes, keeping one build for processes started together', async () => {
    const dir = checkout();
    dirs.push(dir);
    await versaIn(dir, ['--version']);
    const [first] = builds(dir);

    const main = join(dir, 'src/cli/main.ts');
    writeFileSync(main, readFileSync(main, 'utf8').replace('.version(pkg.version)', ".version('9.9.9-edited')"));
    const runs = await Promise.all([1, 2, 3].map(() => versaIn(dir, ['--version'])));
    for (const run of runs) expect(run).toEqual({ code: 0, stdout: '9.9.9-edited\n', stderr: '' });
    expect(builds(dir)).toHaveLength(2);
    expect(builds(dir)).toContain(first); // kept for a while: a running versa may still load files from it
    expect(readdirSync(join(dir, 'dist')).filter((name) => name.startsWith('.'))).toEqual([]);

    // a build unused for an hour goes when the next one is made
    const second = builds(dir).find((name) => name !== first)!;
    const twoHoursAgo = new Date(Date.now() - 2 * 3600_000);
    utimesSync(join(dir, 'dist', first), twoHoursAgo, twoHoursAgo);
    writeFileSync(main, readFileSync(main, 'utf8').replace("'9.9.9-edited'", "'9.9.9-again'"));
    expect((await versaIn(dir, ['--version'])).stdout).toBe('9.9.9-again\n');
    expect(builds(dir)).toHaveLength(2);
    expect(builds(dir)).toContain(second);
  });

  it('says in one line to run npm install when there is no build and nothing to compile with', async () => {
    const dir = checkout(['esbuild']);
    dirs.push(dir);
    const run = await versaIn(dir, ['--version']);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toBe(
      'versa: no build of these sources in dist/, and esbuild is not installed to make one: run `npm install`\n',
    );
  });
});
