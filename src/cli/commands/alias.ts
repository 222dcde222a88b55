import type { Command } from 'commander';
import { parse } from '../output.ts';
import { clientOf, table, withRegistryOptions, type RegistryOptions } from './registry-options.ts';

interface MoveOptions extends RegistryOptions {
  reason?: string;
  force?: boolean;
}

/** `--reason` and `--force` only when given: the API's body is strict. */
const moveOf = (o: MoveOptions) => ({ ...(o.reason ? { reason: o.reason } : {}), ...(o.force ? { force: true } : {}) });

const FORCE_HELP = "move it even if it is a running experiment's arm (recorded in the experiment's history)";

export function register(program: Command): void {
  const alias = program
    .command('alias')
    .description("move an adapter's aliases (production, staging, ...) and read their history");

  withRegistryOptions(
    alias
      .command('set')
      .description('point ALIAS of adapter NAME at VERSION (an earlier version is a rollback)')
      .argument('<name>')
      .argument('<alias>')
      .argument('<version>', 'version number', parse.int(1))
      .option('--reason <text>', 'why (kept in the history)')
      .option('--force', FORCE_HELP),
  ).action(async (name: string, aliasName: string, version: number, o: MoveOptions) => {
    const r = await clientOf(o).setAlias(name, aliasName, { version, ...moveOf(o) });
    if (o.json) process.stdout.write(`${JSON.stringify(r)}\n`);
    else
      process.stdout.write(
        `${r.adapter}@${r.alias}: ${r.previous_version ?? '(new)'} -> ${r.version}${r.changed ? '' : ' (unchanged)'}\n`,
      );
  });

  withRegistryOptions(
    alias
      .command('rollback')
      .description('move ALIAS back to where it pointed before its latest move')
      .argument('<name>')
      .argument('<alias>')
      .option('--reason <text>', 'why (kept in the history)')
      .option('--force', FORCE_HELP),
  ).action(async (name: string, aliasName: string, o: MoveOptions) => {
    const r = await clientOf(o).rollbackAlias(name, aliasName, moveOf(o));
    if (o.json) process.stdout.write(`${JSON.stringify(r)}\n`);
    else process.stdout.write(`${r.adapter}@${r.alias}: ${r.previous_version} -> ${r.version}\n`);
  });

  withRegistryOptions(
    alias
      .command('history')
      .description('who moved ALIAS, when, from which version to which')
      .argument('<name>')
      .argument('<alias>'),
  ).action(async (name: string, aliasName: string, o: RegistryOptions) => {
    const moves = [];
    for await (const m of clientOf(o).aliasHistory(name, aliasName)) moves.push(m);
    if (o.json) {
      process.stdout.write(`${JSON.stringify(moves)}\n`);
      return;
    }
    const rows = moves.map((m) => [
      m.moved_at,
      m.kind,
      `${m.from_version ?? '-'} -> ${m.to_version}`,
      m.moved_by ? `${m.moved_by.key_name} (${m.moved_by.tenant})` : '-',
      m.reason ?? '',
    ]);
    process.stdout.write(table([['WHEN', 'KIND', 'VERSIONS', 'BY', 'REASON'], ...rows]));
  });
}
