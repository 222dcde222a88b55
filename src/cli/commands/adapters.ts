import { Option, type Command } from 'commander';
import { VISIBILITIES } from '../../../registry/schema.ts';
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

  withRegistryOptions(
    adapters
      .command('update')
      .description("change an adapter's visibility, task or description (an empty text clears it)")
      .argument('<name>')
      .addOption(new Option('--visibility <v>', 'private: its tenant only; public: every key').choices(VISIBILITIES))
      .option('--task <text>', 'what it does, e.g. summarize')
      .option('--description <text>', 'one paragraph'),
  ).action(async (name: string, o: RegistryOptions & { visibility?: string; task?: string; description?: string }) => {
    const patch = {
      ...(o.visibility ? { visibility: o.visibility } : {}),
      ...(o.task !== undefined ? { task: o.task || null } : {}),
      ...(o.description !== undefined ? { description: o.description || null } : {}),
    };
    if (!Object.keys(patch).length) throw new Error('nothing to update: give --visibility, --task or --description');
    const a = await clientOf(o).updateAdapter(name, patch);
    if (o.json) return void process.stdout.write(`${JSON.stringify(a)}\n`);
    process.stdout.write(`${a.name}: ${a.visibility}, task ${a.task ?? '-'}\n`);
  });
}
