#!/usr/bin/env node
// The `versa` command. It runs the JavaScript that scripts/build.mjs compiles from the TypeScript sources
// into dist/<hash of the sources>/ (on `npm install`, through the `prepare` script). When the sources have
// changed since (a checkout being edited), it compiles them first, once (under a second): the command
// always runs the code in the tree, never a stale build, and needs no TypeScript loader.
import { spawn } from 'node:child_process';
import { readFileSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { setInterval } from 'node:timers';
import { pathToFileURL } from 'node:url';
import { buildFor, ensureBuilt } from '../scripts/build.mjs';

// The commands that load a model touch hundreds of MB of fresh memory at start (weights, onnxruntime's
// prepacked copies, the KV cache), and on Linux each 4 KiB page costs a fault on first touch. glibc
// asks the kernel for transparent huge pages on its large allocations only when told so at start
// (GLIBC_TUNABLES=glibc.malloc.hugetlb=1; the kernel's THP mode "madvise", the common default): so
// those commands run in a child process started with it, which this one waits for, forwarding the
// stop signals (src/cli/stop-signals.ts takes a signal that comes both ways for one). Only with
// VERSA_HUGE_PAGES=1: whether it pays depends on the host. On one of this project's machines it took
// 8 tokens of the 110M Llama from 2.7-2.9 s to 1.8-1.9 s; on another, freshly booted, it cost
// 0.2-0.5 s (the hypervisor backs each new huge page on first touch), and once the page cache had
// filled memory, 2-3 s on a TinyLlama float32 start (the kernel compacts memory to make huge pages).
const MODEL_COMMANDS = new Set(['generate', 'compute', 'start', 'bench', 'eval']);
const HUGE_PAGES = 'glibc.malloc.hugetlb=1';
if (
  MODEL_COMMANDS.has(process.argv[2]) &&
  process.env.VERSA_HUGE_PAGES === '1' &&
  !process.env.GLIBC_TUNABLES?.includes('glibc.malloc.hugetlb') &&
  thpOnRequest()
) {
  const tunables = [process.env.GLIBC_TUNABLES, HUGE_PAGES].filter(Boolean).join(':');
  // The IPC channel only tells the child when this process is gone (even SIGKILLed): it then ends too.
  const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    stdio: ['inherit', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, GLIBC_TUNABLES: tunables, VERSA_LAUNCHER: String(process.pid) },
  });
  child.channel?.unref();
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => child.kill(signal));
  child.on('exit', (code, signal) => {
    if (signal === null) process.exit(code ?? 1);
    process.removeAllListeners(signal);
    process.kill(process.pid, signal); // ends as the child did
  });
} else {
  if (process.channel && process.env.VERSA_LAUNCHER === String(process.ppid)) {
    // Started by the launcher above: end with it, and never let its channel keep this process alive.
    process.channel.unref();
    process.once('disconnect', () => process.kill(process.pid, 'SIGKILL'));
  }
  await run();
}

/** Whether the kernel backs memory with transparent huge pages only where asked (madvise). */
function thpOnRequest() {
  try {
    return readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8').includes('[madvise]');
  } catch {
    return false; // not Linux, or no THP
  }
}

async function run() {
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
}
