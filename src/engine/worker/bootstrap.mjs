// Worker threads do not inherit the parent's TypeScript loader: register tsx, then start the engine.
import { register } from 'tsx/esm/api';

register();
await import('./engine-worker.ts');
