import { Option, type Command } from 'commander';
import { EXECUTION_PROVIDERS, type ProviderChoice } from '../../engine/runtime/session.ts';
import { parse } from '../output.ts';

interface StartOptions {
  model?: string;
  tokenizer?: string;
  name?: string;
  port?: number;
  home?: string;
  ep: ProviderChoice;
  threads?: number;
  computePort?: number;
}

export function register(program: Command): void {
  program
    .command('start')
    .description('run the whole product on this machine: registry, compute node and edge (the offline demo unless --model)')
    .option('--model <path>', 'serve this base model (Hugging Face folder or llama2.c .bin) instead of the demo')
    .option('--tokenizer <path>', 'its tokenizer (default: next to the model)')
    .option('--name <name>', 'the base model\'s name in the registry (required with --model)')
    .option('--port <n>', 'port of the edge (env PORT, default 8787)', parse.int(0))
    .option('--home <dir>', 'data folder (env VERSA_HOME, default ./.versa)')
    .addOption(new Option('--ep <provider>', 'execution provider of the compute node').choices(EXECUTION_PROVIDERS).default('cpu'))
    .option('--threads <n>', 'CPU threads for the compute node (default: all cores)', parse.int(1))
    .option('--compute-port <n>', 'port of the compute node (default: any free port)', parse.int(0))
    .action(run);
}

async function run(o: StartOptions): Promise<void> {
  const { startLocal } = await import('../../start/local.ts');
  const local = await startLocal({
    model: o.model, tokenizer: o.tokenizer, name: o.name, home: o.home, ep: o.ep, threads: o.threads, computePort: o.computePort,
    port: o.port, log: (line) => process.stderr.write(`versa: ${line}\n`),
  });
  process.stdout.write(`${local.banner}\n`);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      process.stderr.write(`versa: ${signal}: shutting down\n`);
      void local.close().then(() => process.exit(0));
    });
  }
}
