import type { Command } from 'commander';
import { clientOf, formatBytes, table, withRegistryOptions, type RegistryOptions } from './registry-options.ts';

interface LsOptions extends RegistryOptions {
  base?: string;
  task?: string;
  tag?: string;
  q?: string;
}

export function register(program: Command): void {
  const adapters = program.command('adapters').description('adapters in the registry');
  withRegistryOptions(
    adapters
      .command('ls')
      .description('list adapters this key can see')
      .option('--base <model[@version]>', 'only adapters of this base model')
      .option('--task <task>', 'only this task')
      .option('--tag <tag>', 'only adapters with a version tagged so')
      .option('-q, --query <text>', 'search text'),
  ).action(async (o: LsOptions & { query?: string }) => {
    const params = new URLSearchParams({ limit: '200' });
    for (const [k, v] of Object.entries({ base: o.base, task: o.task, tag: o.tag, q: o.query }))
      if (v) params.set(k, v);
    const items = [];
    for await (const a of clientOf(o).paginate(`/v1/adapters?${params}`)) items.push(a);
    if (o.json) {
      process.stdout.write(`${JSON.stringify(items)}\n`);
      return;
    }
    const rows = items.map((a) => {
      const v = a.latest_version;
      const aliases = Object.entries(a.aliases as Record<string, number>)
        .map(([k, n]) => `${k}=${n}`)
        .join(',');
      return [
        a.name,
        v ? String(v.version) : '-',
        v?.base ?? '-',
        v?.kind ?? '-',
        v ? formatBytes(v.bytes) : '-',
        aliases || '-',
        a.visibility,
        a.task ?? '-',
      ];
    });
    process.stdout.write(table([['NAME', 'LATEST', 'BASE', 'KIND', 'SIZE', 'ALIASES', 'VISIBILITY', 'TASK'], ...rows]));
  });
}
