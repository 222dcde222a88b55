import type { Command } from 'commander';
import { clientOf, table, withRegistryOptions, type RegistryOptions } from './registry-options.ts';

export function register(program: Command): void {
  const models = program.command('models').description('base models in the registry');
  withRegistryOptions(models.command('ls').description('list base models')).action(async (o: RegistryOptions) => {
    const list = await clientOf(o).json('GET', '/v1/models');
    const bases = (list.data as Array<{ id: string; kind: string; version: number | null; owned_by: string }>).filter(
      (m) => m.kind === 'base',
    );
    if (o.json) {
      process.stdout.write(`${JSON.stringify(bases)}\n`);
      return;
    }
    process.stdout.write(
      table([
        ['NAME', 'LATEST', 'OWNER'],
        ...bases.map((m) => [m.id, m.version === null ? '-' : String(m.version), m.owned_by]),
      ]),
    );
  });
}
