import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import type { UploadPart } from '../../../registry/client.ts';
import { adapterFolderFiles, fileStream, hashFiles } from '../../../registry/local.ts';
import { parse } from '../output.ts';
import { clientOf, formatBytes, progress, withRegistryOptions, type RegistryOptions } from './registry-options.ts';

interface PublishOptions extends RegistryOptions {
  name: string;
  base: string;
  alias?: string;
  visibility?: string;
  task?: string;
  description?: string;
  dataset?: string;
  license?: string;
  notes?: string;
  card?: string;
  metrics?: string;
  tag?: string[];
}

export function register(program: Command): void {
  withRegistryOptions(
    program
      .command('publish')
      .description('publish an adapter folder (PEFT LoRA or VLM) as a new version')
      .argument('<adapter-dir>', 'folder with adapter_config.json and adapter_model.safetensors (LoRA) or adapter.safetensors (VLM)')
      .requiredOption('--name <name>', 'adapter name in the registry')
      .requiredOption('--base <model@version>', 'base model version the adapter was trained on')
      .option('--alias <alias>', 'point this alias (e.g. staging) at the new version')
      .option('--visibility <v>', 'private (default) or public')
      .option('--task <task>', 'what the adapter does (e.g. summarize)')
      .option('--description <text>', 'one-line description')
      .option('--dataset <text>', 'lineage: training data')
      .option('--license <spdx>', 'lineage: license')
      .option('--notes <text>', 'lineage: training notes')
      .option('--card <file.md>', 'model card (default: README.md in the folder)')
      .option('--metrics <json|file>', 'metrics as a JSON object, or a JSON file')
      .option('--tag <tag>', 'tag (repeatable)', parse.collect),
  ).action(run);
}

async function run(dir: string, o: PublishOptions): Promise<void> {
  const files = adapterFolderFiles(dir);
  const total = files.reduce((n, f) => n + f.bytes, 0);
  // Hash locally first: the registry refuses the upload unless it stores exactly these bytes.
  const hashing = progress('hashing', total);
  const hashes = await hashFiles(
    files.map((f) => f.path),
    (done) => hashing.update(done),
  );
  hashing.stop();
  const fields: Record<string, string | undefined> = {
    base: o.base,
    alias: o.alias,
    visibility: o.visibility,
    task: o.task,
    description: o.description,
    dataset: o.dataset,
    license: o.license,
    training_notes: o.notes,
    card: o.card ? readFileSync(o.card, 'utf8') : files.some((f) => f.name === 'README.md') ? readFileSync(files.find((f) => f.name === 'README.md')!.path, 'utf8') : undefined,
    metrics: o.metrics ? (o.metrics.trim().startsWith('{') ? o.metrics : readFileSync(o.metrics, 'utf8')) : undefined,
    tags: o.tag?.length ? JSON.stringify(o.tag) : undefined,
    checksums: JSON.stringify(Object.fromEntries(hashes.map((h) => [h.name, h.sha256]))),
  };
  const parts: UploadPart[] = [
    ...Object.entries(fields)
      .filter((e): e is [string, string] => e[1] !== undefined)
      .map(([field, value]) => ({ field, value })),
    ...files.map((f) => ({ file: f.name, bytes: f.bytes, open: () => fileStream(f.path) })),
  ];
  const uploading = progress('uploading', total);
  const r = await clientOf(o).upload(`/v1/adapters/${encodeURIComponent(o.name)}/versions`, parts, (sent) => uploading.update(sent));
  uploading.stop();
  if (o.json) {
    process.stdout.write(`${JSON.stringify(r)}\n`);
    return;
  }
  process.stdout.write(
    `published ${r.adapter}@${r.version} on ${r.base}: ${r.kind}, ${r.params.toLocaleString('en-US')} params ` +
      `(${r.params_pct_of_base.toFixed(2)}% of the base), ${formatBytes(r.bytes)}, sha256 ${r.sha256}` +
      `${r.alias ? `; ${r.alias} -> ${r.version}` : ''}\n`,
  );
}
