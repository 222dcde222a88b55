// Fails when a source line (tracked, or new and not ignored) is longer than Prettier's print width:
// Prettier breaks code but not strings or comments, so those are checked here. Lists FILE:LINE
// (length) and exits 1, or prints nothing and exits 0. Plain Node: node scripts/check-line-length.mjs
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const MAX = 120;
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const EXCLUDED_DIRS = ['test/fixtures/'];
const EXCLUDED_FILES = ['package-lock.json'];

const files = execFileSync(
  'git',
  ['ls-files', '-z', '--cached', '--others', '--exclude-standard', '--', '*.ts', '*.js', '*.mjs', '*.json'],
  {
    cwd: ROOT,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  },
)
  .split('\0')
  .filter((f) => f !== '')
  .filter((f) => !EXCLUDED_DIRS.some((d) => f.startsWith(d)))
  .filter((f) => !EXCLUDED_FILES.includes(f) && !f.endsWith('/package-lock.json'));

const long = [];
for (const file of files) {
  const path = join(ROOT, file);
  if (!existsSync(path)) continue; // deleted in the working tree, not yet staged
  readFileSync(path, 'utf8')
    .split(/\r?\n/)
    .forEach((line, i) => {
      const length = [...line].length; // characters (code points), as awk counts them
      if (length > MAX) long.push(`${file}:${i + 1} (${length})`);
    });
}

if (long.length) {
  for (const l of long) console.log(l);
  console.error(`${long.length} line(s) longer than ${MAX} characters`);
  process.exit(1);
}
