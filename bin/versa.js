#!/usr/bin/env node
// The `versa` command. It runs the JavaScript that scripts/build.mjs compiles from the TypeScript sources
// into dist/<hash of the sources>/ (on `npm install`, through the `prepare` script). When the sources have
// changed since (a checkout being edited), it compiles them first, once (under a second): the command
// always runs the code in the tree, never a stale build, and needs no TypeScript loader.
import { utimesSync } from 'node:fs';
import { join } from 'node:path';
import { setInterval } from 'node:timers';
import { pathToFileURL } from 'node:url';
import { buildFor, ensureBuilt } from '../scripts/build.mjs';

let build = buildFor();
if (!build.complete) {
  try {
    build = await ensureBuilt();
  } catch (e) {
    const why =
      e?.code === 'ERR_MODULE_NOT_FOUND'
        ? 'no build of these sources in dist/, and esbuild is not installed to make one: run `npm install`'
        : `compiling the sources into dist/ failed: ${String(e?.message ?? e).split('\n')[0]}`;
    process.stderr.write(`versa: ${why}\n`);
    process.exit(1);
  }
}
// Builds unused for an hour are removed when a new one is made (its worker threads load files later, so a
// running command marks its own as used every 10 minutes).
const markUsed = () => {
  try {
    utimesSync(build.dir, new Date(), new Date());
  } catch {
    // removed by hand (rm -r dist): nothing left to keep
  }
};
markUsed();
setInterval(markUsed, 600_000).unref();
await import(pathToFileURL(join(build.dir, 'src/cli/main.js')).href);
