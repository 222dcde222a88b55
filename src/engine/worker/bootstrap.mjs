// A worker thread's entry when running from the TypeScript sources (tests, tsx): threads do not inherit
// the parent's TypeScript loader, so register tsx, then start the thread's entry (the engine's, or the
// one named in workerData). `versa` runs the compiled build, whose bootstrap (written by
// scripts/build.mjs) imports the compiled entry and needs no loader.
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
await import(workerData?.entry ?? './engine-worker.ts');
