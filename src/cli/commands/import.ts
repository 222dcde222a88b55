import type { Command } from 'commander';
import { describeLocalModel } from '../../../registry/local.ts';
import { clientOf, formatBytes, progress, withRegistryOptions, type RegistryOptions } from './registry-options.ts';

interface ImportOptions extends RegistryOptions {
  name: string;
  tokenizer?: string;
  notes?: string;
}

export function register(program: Command): void {
  withRegistryOptions(
    program
      .command('import')
      .description(
        'register a local base model (Hugging Face folder or llama2.c checkpoint) as a new base model version; ' +
          'weights stay local',
      )
      .argument('<path>', 'model folder or .bin checkpoint')
      .requiredOption('--name <name>', 'base model name in the registry (created if new)')
      .option('--tokenizer <path>', 'tokenizer.json, tokenizer.bin or their folder (default: next to the model)')
      .option('--notes <text>', 'notes for this version'),
  ).action(run);
}

async function run(path: string, o: ImportOptions): Promise<void> {
  let bar: ReturnType<typeof progress> | undefined;
  const input = await describeLocalModel(path, {
    tokenizer: o.tokenizer,
    onProgress: (done, total) => {
      bar ??= progress('hashing', total);
      bar.update(done);
    },
  });
  bar?.stop();
  const r = await clientOf(o).json('POST', `/v1/models/${encodeURIComponent(o.name)}/versions`, {
    ...input,
    ...(o.notes ? { notes: o.notes } : {}),
  });
  if (o.json) return void process.stdout.write(`${JSON.stringify(r)}\n`);
  // Registered is not served: requests for it get 503 until a compute node loads these files.
  const tokenizer = o.tokenizer ? ` --tokenizer ${o.tokenizer}` : '';
  process.stdout.write(
    `registered ${r.ref}: ${r.architecture}, ${r.params.toLocaleString('en-US')} params, ` +
      `${r.files.length} files (${formatBytes(r.bytes)}), sha256 ${r.sha256}\n` +
      `to serve it: versa start --model ${path}${tokenizer} --name ${o.name} (with the other bases' ` +
      `--model/--name), or add a compute node loaded with these files to COMPUTE_NODES\n`,
  );
}
