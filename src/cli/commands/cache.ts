import type { Command } from 'commander';
import {
  cacheBoundMb,
  defaultCacheDir,
  listCache,
  removeFromCache,
  type CacheEntryInfo,
} from '../../engine/weights/cache.ts';
import { formatBytes, table } from './registry-options.ts';

interface CacheOptions {
  dir?: string;
  json?: boolean;
}

/** The folder the commands act on: --dir, else where `versa generate` and `versa compute` keep it. */
const cacheDir = (o: CacheOptions) => o.dir ?? defaultCacheDir();

const formatOf = (e: CacheEntryInfo) =>
  e.format.quantize === 'none' ? e.format.float : `${e.format.quantize}/${e.format.block}`;

export function register(program: Command): void {
  const cache = program
    .command('cache')
    .description(
      'the converted-weights cache ($VERSA_HOME/cache, else ~/.cache/versa/weights; bounded by VERSA_CACHE_MB)',
    );
  cache
    .command('ls')
    .description('list cached weights, most recently used first')
    .option('--dir <dir>', 'cache folder (default: $VERSA_HOME/cache, else $XDG_CACHE_HOME/versa/weights)')
    .option('--json', 'print one JSON object {dir, bytes, max_bytes, entries}')
    .action((o: CacheOptions) => {
      const dir = cacheDir(o);
      const entries = listCache(dir);
      const bytes = entries.reduce((n, e) => n + e.bytes, 0);
      const maxMb = cacheBoundMb();
      if (o.json) {
        const out = { dir, bytes, max_bytes: maxMb * 1024 * 1024, entries };
        return void process.stdout.write(`${JSON.stringify(out)}\n`);
      }
      const rows = entries.map((e) => [
        e.id.slice(0, 12),
        e.valid ? formatOf(e) : 'torn',
        formatBytes(e.bytes),
        e.lastUsed.toISOString().slice(0, 19).replace('T', ' '),
        e.model,
      ]);
      process.stdout.write(`${dir}: ${formatBytes(bytes)} of ${formatBytes(maxMb * 1024 * 1024)}\n`);
      if (rows.length) process.stdout.write(table([['ID', 'FORMAT', 'SIZE', 'LAST USED', 'MODEL'], ...rows]));
    });
  cache
    .command('rm')
    .description('remove cached weights by id (or a unique prefix of one), or all of them')
    .argument('[ids...]')
    .option('--all', 'remove every entry')
    .option('--dir <dir>', 'cache folder (default: $VERSA_HOME/cache, else $XDG_CACHE_HOME/versa/weights)')
    .option('--json', 'print one JSON object {removed: [paths]}')
    .action((ids: string[], o: CacheOptions & { all?: boolean }) => {
      if (!o.all && ids.length === 0) throw new Error('give the ids to remove (see versa cache ls), or --all');
      if (o.all && ids.length) throw new Error('give either ids or --all, not both');
      const removed = removeFromCache(cacheDir(o), ids, o.all);
      if (o.json) return void process.stdout.write(`${JSON.stringify({ removed })}\n`);
      process.stdout.write(`removed ${removed.length} file(s)\n`);
    });
}
