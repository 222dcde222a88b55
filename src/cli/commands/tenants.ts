import { InvalidArgumentError, type Command } from 'commander';
import type { TenantSettingsBody } from '../../../registry/client.ts';
import { clientOf, table, withRegistryOptions, type RegistryOptions } from './registry-options.ts';

interface SettingsOptions extends RegistryOptions {
  name?: string;
  maxAdapterFraction?: number | 'default';
}

// "default", not null: commander turns a parser's null into ''.
function fraction(value: string): number | 'default' {
  if (value === 'default') return value;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n <= 0)
    throw new InvalidArgumentError('expected a positive number, or "default"');
  return n;
}

/** The settings a command was given, and only those. */
const settingsOf = (o: SettingsOptions): TenantSettingsBody => ({
  ...(o.name !== undefined ? { name: o.name } : {}),
  ...(o.maxAdapterFraction !== undefined
    ? { max_adapter_fraction: o.maxAdapterFraction === 'default' ? null : o.maxAdapterFraction }
    : {}),
});

const withSettings = (cmd: Command) =>
  cmd
    .option('--name <text>', 'display name (default: the id)')
    .option(
      '--max-adapter-fraction <x>',
      'the largest adapter it may publish, as a fraction of its base\'s parameters ("default": the registry\'s)',
      fraction,
    );

/** `versa tenants create|update|ls` (an operator's key). */
export function register(program: Command): void {
  const tenants = program.command('tenants').description('tenants: who owns adapters and keys');

  withRegistryOptions(
    withSettings(
      tenants
        .command('create')
        .description('create a tenant (then give it keys: versa keys create --tenant ID)')
        .argument('<id>', 'lowercase letters, digits, "_", "-"'),
    ),
  ).action(async (id: string, o: SettingsOptions) => {
    const t = await clientOf(o).createTenant(id, settingsOf(o));
    process.stdout.write(o.json ? `${JSON.stringify(t)}\n` : `created tenant ${t.id}\n`);
  });

  withRegistryOptions(
    withSettings(tenants.command('update').description("change a tenant's settings").argument('<id>')),
  ).action(async (id: string, o: SettingsOptions) => {
    const settings = settingsOf(o);
    if (!Object.keys(settings).length) throw new Error('nothing to update: give --name or --max-adapter-fraction');
    const t = await clientOf(o).updateTenant(id, settings);
    process.stdout.write(o.json ? `${JSON.stringify(t)}\n` : `updated tenant ${t.id}\n`);
  });

  withRegistryOptions(tenants.command('ls').description('list tenants')).action(async (o: RegistryOptions) => {
    const list = await clientOf(o).listTenants();
    if (o.json) return void process.stdout.write(`${JSON.stringify(list)}\n`);
    process.stdout.write(table([['ID', 'NAME', 'CREATED'], ...list.map((t) => [t.id, t.name, t.created_at])]));
  });
}
