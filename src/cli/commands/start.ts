import type { Command } from 'commander';
import { parse } from '../output.ts';
import { runtimeOf } from '../../engine/runtime-options.ts';
import { addRuntimeOptions, type RuntimeOptions } from './runtime-options.ts';

interface StartOptions extends RuntimeOptions {
  model?: string;
  tokenizer?: string;
  name?: string;
  newVersion?: boolean;
  port?: number;
  home?: string;
  computePort?: number;
}

export function register(program: Command): void {
  const command = program
    .command('start')
    .description(
      'run the whole product on this machine: registry, compute node and edge (the offline demo unless --model)',
    )
    .option('--model <path>', 'serve this base model (Hugging Face folder or llama2.c .bin) instead of the demo')
    .option('--tokenizer <path>', 'its tokenizer (default: next to the model)')
    .option('--name <name>', "the base model's name in the registry (required with --model)")
    .option('--new-version', '--name is registered with other weights: register --model as its next version')
    .option('--port <n>', 'port of the edge (env PORT, default 8787)', parse.int(0))
    .option('--home <dir>', 'data folder (env VERSA_HOME, default ./.versa)')
    .option('--compute-port <n>', 'port of the compute node (default: any free port)', parse.int(0));
  addRuntimeOptions(command).action(run);
}

async function run(o: StartOptions): Promise<void> {
  const { startLocal } = await import('../../start/local.ts');
  const local = await startLocal({
    model: o.model,
    tokenizer: o.tokenizer,
    name: o.name,
    newVersion: o.newVersion,
    home: o.home,
    ...runtimeOf(o),
    computePort: o.computePort,
    port: o.port,
    log: (line) => process.stderr.write(`versa: ${line}\n`),
  });
  process.stdout.write(`${local.banner}\n`);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      process.stderr.write(`versa: ${signal}: shutting down\n`);
      void local.close().then(() => process.exit(0));
    });
  }
}
