// Worker threads do not inherit the parent's TypeScript loader: register tsx, then start the
// thread's entry (the engine's, or the one named in workerData).
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
await import(workerData?.entry ?? './engine-worker.ts');
