import { InvalidArgumentError, type Command } from 'commander';
import { SCOPES, type Scope } from '../../http/principal.ts';
import { clientOf, table, withRegistryOptions, type RegistryOptions } from './registry-options.ts';

function scopes(value: string): Scope[] {
  const list = value.split(',').map((s) => s.trim());
  const unknown = list.filter((s) => !(SCOPES as readonly string[]).includes(s));
  if (!value.trim() || unknown.length)
    throw new InvalidArgumentError(`expected a comma list of ${SCOPES.join(', ')} (not "${unknown.join(',')}")`);
  return [...new Set(list)] as Scope[];
}

/**
 * `versa keys create|ls|revoke`. A compute node's key is `versa keys create --scopes read`: it may
 * download adapter files and nothing else.
 */
export function register(program: Command): void {
  const keys = program.command('keys').description('API keys: create (shown once), list, revoke');

  withRegistryOptions(
    keys
      .command('create')
      .description('create a key; prints the key alone (stdout), once: the registry keeps only its hash')
      .requiredOption('--scopes <list>', `comma list of ${SCOPES.join(', ')} (a compute node: read)`, scopes)
      .option('--tenant <id>', "the key's tenant (default: the tenant of the key making it)")
      .option('--name <text>', 'what the key is for (e.g. node-1)'),
  ).action(async (o: RegistryOptions & { scopes: Scope[]; tenant?: string; name?: string }) => {
    const k = await clientOf(o).createKey({
      scopes: o.scopes,
      ...(o.tenant ? { tenant: o.tenant } : {}),
      ...(o.name ? { name: o.name } : {}),
    });
    if (o.json) return void process.stdout.write(`${JSON.stringify(k)}\n`);
    process.stdout.write(`${k.key}\n`);
    process.stderr.write(
      `versa: created key ${k.id} "${k.name}" for tenant ${k.tenant} (${k.scopes.join(',')}); shown only once\n`,
    );
  });

  withRegistryOptions(
    keys
      .command('ls')
      .description('list keys (never the keys themselves)')
      .option('--tenant <id>', "only this tenant's keys"),
  ).action(async (o: RegistryOptions & { tenant?: string }) => {
    const list = await clientOf(o).listKeys(o.tenant);
    if (o.json) return void process.stdout.write(`${JSON.stringify(list)}\n`);
    const rows = list.map((k) => [
      k.id,
      k.tenant,
      k.name,
      `${k.prefix}...`,
      k.scopes.join(','),
      k.created_at,
      k.revoked_at ?? '-',
    ]);
    process.stdout.write(table([['ID', 'TENANT', 'NAME', 'PREFIX', 'SCOPES', 'CREATED', 'REVOKED'], ...rows]));
  });

  withRegistryOptions(keys.command('revoke').description('revoke a key at once').argument('<id>', 'key_...')).action(
    async (id: string, o: RegistryOptions) => {
      const k = await clientOf(o).revokeKey(id);
      process.stdout.write(o.json ? `${JSON.stringify(k)}\n` : `revoked ${k.id} "${k.name}" (${k.tenant})\n`);
    },
  );
}
