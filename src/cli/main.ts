import { Command, CommanderError } from 'commander';
import pkg from '../../package.json' with { type: 'json' };
import { fail } from './output.ts';

/**
 * The `versa` command line. Each subcommand lives in commands/ and is loaded only when used, so
 * `versa models ls` does not pay for onnxruntime.
 */
const program = new Command('versa')
  .description('Serve many generation tasks from one language model')
  .version(pkg.version)
  .configureOutput({ outputError: (message, write) => write(`versa: ${message.trim()}\n`) })
  .exitOverride();

const commands: Record<string, () => Promise<{ register(program: Command): void }>> = {
  generate: () => import('./commands/generate.ts'),
  eval: () => import('./commands/eval.ts'),
  bench: () => import('./commands/bench.ts'),
  compute: () => import('./commands/compute.ts'),
  start: () => import('./commands/start.ts'),
  edge: () => import('./commands/edge.ts'),
  publish: () => import('./commands/publish.ts'),
  import: () => import('./commands/import.ts'),
  models: () => import('./commands/models.ts'),
  adapters: () => import('./commands/adapters.ts'),
  alias: () => import('./commands/alias.ts'),
  experiments: () => import('./commands/experiments.ts'),
  versions: () => import('./commands/versions.ts'),
  tenants: () => import('./commands/tenants.ts'),
  keys: () => import('./commands/keys.ts'),
  pull: () => import('./commands/pull.ts'),
  cache: () => import('./commands/cache.ts'),
};

const name = process.argv[2];
// `generate` needs the engine's thread: started first, it loads while the command's modules do.
if (name === 'generate') (await import('../engine/worker/client.ts')).prestartEngineThread();
if (name && name in commands) (await commands[name]()).register(program);
// `versa --version` needs no command: it loads none
else if (name !== '--version' && name !== '-V')
  for (const load of Object.values(commands)) (await load()).register(program);

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) process.exit(e.exitCode);
  fail(e);
}
