// Compiles the TypeScript sources (src/, registry/) to JavaScript that bin/versa.js runs without a
// TypeScript loader. One output file per source file (esbuild, no bundling: imports stay imports, with
// `./x.ts` rewritten to `./x.js`), written to dist/<hash>/, where <hash> is a digest of the sources and
// of this script: a build is never stale, edits make a new one, and a running process (whose worker
// threads load files later) keeps its own. Runs on `npm install` (the `prepare` script) and as
// `npm run build`; bin/versa.js calls ensureBuilt() when the sources changed since.
// It also bundles the dashboard (src/edge/ui/client/) for the browser into dist/ui/ (see buildDashboard).
// usage: node scripts/build.mjs          (builds unless built; prints the build's folder)
//        node scripts/build.mjs --ui     (the dashboard only)
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DIST = join(ROOT, 'dist');
/** The compiled trees; everything else at the top level is linked into the build (see linkRest). */
const SOURCE_DIRS = ['src', 'registry'];
/** Also read by the build: package.json's version is inlined into the CLI. */
const INPUT_FILES = ['package.json', 'scripts/build.mjs'];
const NOT_LINKED = new Set([...SOURCE_DIRS, 'dist', 'node_modules']);
const MANIFEST = 'build.json';
const KEEP_OLD_BUILDS_MS = 3600_000;
/** The dashboard's sources, and the fixed folder its bundle goes to (a build's tree links it, see linkRest). */
const UI_SOURCES = 'src/edge/ui/client';
const UI_DIR = join(DIST, 'ui');

function sourceFiles() {
  const files = [];
  for (const dir of SOURCE_DIRS) {
    for (const e of readdirSync(join(ROOT, dir), { recursive: true, withFileTypes: true })) {
      if (e.isFile()) files.push(relative(ROOT, join(e.parentPath, e.name)));
    }
  }
  return files.sort();
}

/** A digest of every file the build reads: names and contents. */
export function sourceHash() {
  const hash = createHash('sha256');
  for (const file of [...sourceFiles(), ...INPUT_FILES]) {
    hash.update(`${file}\0`);
    hash.update(readFileSync(join(ROOT, file)));
    hash.update('\0');
  }
  return hash.digest('hex').slice(0, 16);
}

/** The folder of the build of these sources, and whether it is complete (its manifest is written last). */
export function buildFor(hash = sourceHash()) {
  const dir = join(DIST, hash);
  return { dir, hash, complete: existsSync(join(dir, MANIFEST)) };
}

/**
 * Each source file to one JavaScript file: every import is left to Node at run time (external), relative
 * `.ts` specifiers renamed to `.js`. JSON imports are inlined (package.json's version).
 */
const oneFilePerSource = {
  name: 'one-file-per-source',
  setup(build) {
    build.onResolve({ filter: /.*/ }, (args) => {
      if (args.kind === 'entry-point' || args.path.endsWith('.json')) return undefined;
      return { path: args.path.replace(/^(\.{1,2}\/.*)\.ts$/, '$1.js'), external: true };
    });
  },
};

/** The worker threads' entry in a build: the compiled entry, no TypeScript loader (src/engine/worker/bootstrap.mjs). */
const COMPILED_BOOTSTRAP = `// Written by scripts/build.mjs: a worker thread's entry (see the sources' bootstrap.mjs).
import { workerData } from 'node:worker_threads';

await import((workerData?.entry ?? './engine-worker.ts').replace(/\\.ts$/, '.js'));
`;

/**
 * Code that finds files relative to itself (registry/db/sqlite.ts: ../../migrations) sees the same tree in
 * dist/<hash>/ as in the repository: the top-level entries that are not compiled are symbolic links, and
 * so is the dashboard's bundle (dist/<hash>/dist/ui is dist/ui).
 */
function linkRest(dir) {
  for (const name of readdirSync(ROOT)) {
    if (!NOT_LINKED.has(name) && !name.startsWith('.')) symlinkSync(join('..', '..', name), join(dir, name));
  }
  mkdirSync(join(dir, 'dist'));
  symlinkSync(join('..', '..', 'ui'), join(dir, 'dist', 'ui'));
}

/**
 * The dashboard for the browser: src/edge/ui/client/app.ts and the modules it imports as one ES module,
 * dist/ui/app.js, and styles.css beside it. The Node edge serves them from there; wrangler bundles them
 * into the Worker as text (wrangler.toml [[rules]]). Files are replaced only when they change, each at once
 * (a server reading them never sees half a file). Bundling takes milliseconds: it runs on every build.
 */
export async function buildDashboard() {
  const { build } = await import('esbuild');
  const { outputFiles } = await build({
    absWorkingDir: ROOT,
    entryPoints: [`${UI_SOURCES}/app.ts`, `${UI_SOURCES}/styles.css`],
    outdir: UI_DIR,
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    charset: 'utf8',
    logLevel: 'error',
  });
  mkdirSync(UI_DIR, { recursive: true });
  for (const file of outputFiles) {
    if (existsSync(file.path) && readFileSync(file.path).equals(file.contents)) continue;
    const tmp = `${file.path}.${process.pid}.tmp`;
    writeFileSync(tmp, file.contents);
    renameSync(tmp, file.path);
  }
  return UI_DIR;
}

/** Builds the current sources unless built; safe to run from many processes at once. */
export async function ensureBuilt() {
  await buildDashboard();
  const current = buildFor();
  if (current.complete) return current;
  const { build } = await import('esbuild');
  const tmp = join(DIST, `.tmp-${process.pid}-${Date.now()}`);
  mkdirSync(tmp, { recursive: true });
  try {
    const entryPoints = sourceFiles().filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'));
    await build({
      absWorkingDir: ROOT,
      entryPoints,
      outdir: tmp,
      outbase: '.',
      bundle: true, // only so that the plugin sees (and rewrites) every import
      plugins: [oneFilePerSource],
      format: 'esm',
      platform: 'node',
      target: 'node20',
      logLevel: 'error',
    });
    writeFileSync(join(tmp, 'src/engine/worker/bootstrap.mjs'), COMPILED_BOOTSTRAP);
    linkRest(tmp);
    writeFileSync(
      join(tmp, MANIFEST),
      JSON.stringify({ hash: current.hash, builtAt: new Date().toISOString() }) + '\n',
    );
    try {
      renameSync(tmp, current.dir);
    } catch (e) {
      // another process built the same sources first: theirs is as good as ours
      if (!buildFor(current.hash).complete) throw e;
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  removeOldBuilds(current.hash);
  return buildFor(current.hash);
}

/**
 * Removes the other builds unused for an hour (bin/versa.js marks the one it runs as used, at start and
 * every 10 minutes while it runs, since worker threads load their files later), and the temporary
 * folders of builds that died half-way.
 */
function removeOldBuilds(keep) {
  for (const name of readdirSync(DIST)) {
    const path = join(DIST, name);
    const mtimeMs = statSync(path, { throwIfNoEntry: false })?.mtimeMs; // another process may remove it first
    if (name !== keep && path !== UI_DIR && mtimeMs !== undefined && Date.now() - mtimeMs > KEEP_OLD_BUILDS_MS) {
      rmSync(path, { recursive: true, force: true });
    }
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  if (process.argv.includes('--ui')) {
    console.log(`${relative(ROOT, await buildDashboard())}: the dashboard's bundle`);
  } else {
    const built = await ensureBuilt();
    console.log(`${relative(ROOT, built.dir)}: the build of the current sources`);
  }
}
