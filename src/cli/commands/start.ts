import { InvalidArgumentError, type Command } from 'commander';
import { parse } from '../output.ts';
import { runtimeOf } from '../../engine/runtime-options.ts';
import type { LocalBase } from '../../start/local.ts';
import { addRuntimeOptions, type RuntimeOptions } from './runtime-options.ts';
import { onStopSignal } from '../stop-signals.ts';

interface StartOptions extends RuntimeOptions {
  newVersion?: boolean;
  port?: number;
  home?: string;
  computePort?: number;
}

export function register(program: Command): void {
  const bases = baseOptions();
  const command = program
    .command('start')
    .description(
      'run the whole product on this machine: registry, one compute node per base model and the edge ' +
        '(the offline demo unless --model)',
    )
    .option('--model <path>', 'serve this base model (Hugging Face folder or llama2.c .bin); repeatable', bases.model)
    .option(
      '--tokenizer <path>',
      'the tokenizer of the --model before it (default: next to the model)',
      bases.tokenizer,
    )
    .option('--name <name>', 'the registry name of the --model before it (required with each --model)', bases.name)
    .option('--new-version', 'a --name is registered with other weights: register its --model as its next version')
    .option('--port <n>', 'port of the edge (env PORT, default 8787)', parse.int(0))
    .option('--home <dir>', 'data folder (env VERSA_HOME, default ./.versa)')
    .option(
      '--compute-port <n>',
      'port of the first compute node, the next ones after it (default: any free)',
      parse.int(0),
    );
  addRuntimeOptions(command).action((o: StartOptions) => run(o, bases.list));
}

/**
 * `--model A [--tokenizer T] --name a --model B --name b`: each --model starts a base, and the
 * --tokenizer and --name after it (before the next --model) are its own.
 */
function baseOptions() {
  const list: Array<Partial<LocalBase>> = [];
  const current = (flag: string, value: string) => {
    const base = list.at(-1);
    if (!base) throw new InvalidArgumentError(`${flag} belongs to the --model before it: give --model PATH first`);
    if (base[flag === '--name' ? 'name' : 'tokenizer'] !== undefined)
      throw new InvalidArgumentError(`--model ${base.model} has two ${flag}s (${value} is the second)`);
    return base;
  };
  return {
    list,
    model: (path: string) => void list.push({ model: path }),
    tokenizer: (path: string) => void (current('--tokenizer', path).tokenizer = path),
    name: (name: string) => void (current('--name', name).name = name),
  };
}

async function run(o: StartOptions, bases: Array<Partial<LocalBase>>): Promise<void> {
  const { startLocal } = await import('../../start/local.ts');
  const local = await startLocal({
    bases: bases as LocalBase[], // startLocal refuses a --model without its --name
    newVersion: o.newVersion,
    home: o.home,
    ...runtimeOf(o),
    computePort: o.computePort,
    port: o.port,
    log: (line) => process.stderr.write(`versa: ${line}\n`),
  });
  // Before the announcement: whoever reads it may stop this process at once.
  onStopSignal((signal) => {
    process.stderr.write(`versa: ${signal}: shutting down\n`);
    return local.close();
  });
  process.stdout.write(`${local.banner}\n`);
}
