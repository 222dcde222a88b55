import type { Command } from 'commander';
import { parse } from '../output.ts';
import { clientOf, table, withRegistryOptions, type RegistryOptions } from './registry-options.ts';

const path = (name: string, alias: string) =>
  `/v1/adapters/${encodeURIComponent(name)}/aliases/${encodeURIComponent(alias)}`;

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
      .option('--reason <text>', 'why (kept in the history)'),
  ).action(async (name: string, aliasName: string, version: number, o: RegistryOptions & { reason?: string }) => {
    const r = await clientOf(o).json('PUT', path(name, aliasName), {
      version,
      ...(o.reason ? { reason: o.reason } : {}),
    });
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
      .argument('<alias>'),
  ).action(async (name: string, aliasName: string, o: RegistryOptions) => {
    const r = await clientOf(o).json('POST', `${path(name, aliasName)}/rollback`, {});
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
    for await (const m of clientOf(o).paginate(`${path(name, aliasName)}/history`)) moves.push(m);
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
