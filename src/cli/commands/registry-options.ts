import type { Command } from 'commander';
import { SingleBar, Presets } from 'cli-progress';
import { resolve } from 'node:path';
import { RegistryClient } from '../../../registry/client.ts';
import { existingLocalKey } from '../../start/home.ts';

/** Options shared by the commands that talk to a registry. */
export interface RegistryOptions {
  registry: string;
  key?: string;
  json?: boolean;
}

/** The registry `versa start` serves, and the default: http://127.0.0.1:$PORT (PORT default 8787). */
const localRegistry = () => `http://127.0.0.1:${process.env.PORT || 8787}`;

export function withRegistryOptions(cmd: Command): Command {
  return (
    cmd
      .option(
        '--registry <url>',
        'registry URL (env VERSA_REGISTRY, else http://127.0.0.1:$PORT, PORT default 8787)',
        process.env.VERSA_REGISTRY || localRegistry(),
      )
      // No default value here: commander would print the key in --help.
      .option('--key <key>', 'API key (default: env VERSA_API_KEY, else $VERSA_HOME/admin-key for the local registry)')
      .option('--json', 'print JSON instead of text')
  );
}

/**
 * --key, else VERSA_API_KEY, else, for the local default registry only, the admin key that
 * `versa start` keeps in $VERSA_HOME (default ./.versa): another registry never gets the local key.
 */
function keyOf(o: RegistryOptions): string | undefined {
  const given = o.key || process.env.VERSA_API_KEY;
  if (given) return given;
  if (o.registry === localRegistry()) return existingLocalKey(resolve(process.env.VERSA_HOME || '.versa'));
  return undefined;
}

export function clientOf(o: RegistryOptions): RegistryClient {
  return new RegistryClient({ url: o.registry, key: keyOf(o) });
}

export interface Progress {
  update(done: number): void;
  stop(): void;
}

/** A byte progress bar on stderr, only when stderr is a terminal (never in pipes, logs or CI). */
export function progress(label: string, total: number): Progress {
  if (!process.stderr.isTTY || total <= 0) return { update() {}, stop() {} };
  const bar = new SingleBar(
    {
      stream: process.stderr,
      format: `${label.padEnd(10)} [{bar}] {percentage}% | {done}/{size}`,
      hideCursor: true,
      clearOnComplete: false,
    },
    Presets.shades_classic,
  );
  bar.start(total, 0, { done: formatBytes(0), size: formatBytes(total) });
  return {
    update: (done) => bar.update(Math.min(done, total), { done: formatBytes(done), size: formatBytes(total) }),
    stop: () => bar.stop(),
  };
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = -1;
  do {
    v /= 1024;
    u++;
  } while (v >= 1024 && u < units.length - 1);
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[u]}`;
}

/** Prints rows as aligned columns. */
export function table(rows: string[][]): string {
  if (!rows.length) return '';
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return (
    rows
      .map((r) =>
        r
          .map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i])))
          .join('  ')
          .trimEnd(),
      )
      .join('\n') + '\n'
  );
}
