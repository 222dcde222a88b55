import type { Command } from 'commander';
import type { VersionStatus } from '../../../registry/schema.ts';
import { parse } from '../output.ts';
import { clientOf, withRegistryOptions, type RegistryOptions } from './registry-options.ts';

/** Each subcommand sets one status: what it means for serving is the registry's (README, "HTTP API"). */
const ACTIONS: Array<{ command: string; status: VersionStatus; description: string }> = [
  {
    command: 'deprecate',
    status: 'deprecated',
    description: 'deprecate a version: still served when pinned or aliased, with a warning',
  },
  { command: 'yank', status: 'yanked', description: 'yank a version: refused from now on (its files are kept)' },
  { command: 'restore', status: 'active', description: 'make a deprecated or yanked version active again' },
];

/** `versa versions deprecate|yank|restore NAME VERSION`: an adapter's (or, with --model, a base model's) versions. */
export function register(program: Command): void {
  const versions = program.command('versions').description("set the status of an adapter's or base model's version");
  for (const { command, status, description } of ACTIONS)
    withRegistryOptions(
      versions
        .command(command)
        .description(description)
        .argument('<name>', 'adapter (or, with --model, base model) name')
        .argument('<version>', 'version number', parse.int(1))
        .option('--model', 'NAME is a base model, not an adapter'),
    ).action(async (name: string, version: number, o: RegistryOptions & { model?: boolean }) => {
      const r = await clientOf(o).setVersionStatus(o.model ? 'model' : 'adapter', name, version, status);
      if (o.json) process.stdout.write(`${JSON.stringify(r)}\n`);
      else process.stdout.write(`${name}@${version}: ${r.status ?? status}\n`);
    });
}
