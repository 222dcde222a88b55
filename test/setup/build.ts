import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

/**
 * Before any test file: the dashboard's bundle (dist/ui/), which the Node edge serves and the
 * Worker's [assets] holds, built from the current sources as `npm install` would.
 */
export function setup(): void {
  execFileSync(process.execPath, ['scripts/build.mjs', '--ui'], { cwd: join(import.meta.dirname, '../..') });
}
