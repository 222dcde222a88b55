import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { adapterFolderFiles, publishFolder } from '../../../registry/local.ts';
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
  chatTemplate?: string;
}

export function register(program: Command): void {
  withRegistryOptions(
    program
      .command('publish')
      .description('publish an adapter folder (PEFT LoRA or VLM) as a new version')
      .argument(
        '<adapter-dir>',
        'folder with adapter_config.json and adapter_model.safetensors (LoRA) or adapter.safetensors (VLM)',
      )
      .requiredOption('--name <name>', 'adapter name in the registry')
      .requiredOption('--base <model@version>', 'base model version the adapter was trained on')
      .option('--alias <alias>', 'point this alias (e.g. staging) at the new version')
      .option('--visibility <v>', 'private (default) or public')
      .option('--task <task>', 'what the adapter does (e.g. summarize)')
      .option('--description <text>', 'one-line description')
      .option(
        '--chat-template <file>',
        "this version's Jinja chat template for /v1/chat/completions (default: the folder's " +
          "chat_template.jinja or tokenizer_config.json chat_template, else the base model's)",
      )
      .option('--dataset <text>', 'lineage: training data')
      .option('--license <spdx>', 'lineage: license')
      .option('--notes <text>', 'lineage: training notes')
      .option('--card <file.md>', 'model card (default: README.md in the folder)')
      .option('--metrics <json|file>', 'metrics as a JSON object, or a JSON file')
      .option('--tag <tag>', 'tag (repeatable)', parse.collect),
  ).action(run);
}

async function run(dir: string, o: PublishOptions): Promise<void> {
  const total = adapterFolderFiles(dir).reduce((n, f) => n + f.bytes, 0);
  const hashing = progress('hashing', total);
  const uploading = progress('uploading', total);
  const r = await publishFolder(
    clientOf(o),
    dir,
    o.name,
    {
      base: o.base,
      alias: o.alias,
      visibility: o.visibility,
      task: o.task,
      description: o.description,
      chat_template: o.chatTemplate ? readFileSync(o.chatTemplate, 'utf8') : undefined,
      dataset: o.dataset,
      license: o.license,
      training_notes: o.notes,
      card: o.card ? readFileSync(o.card, 'utf8') : undefined,
      metrics: o.metrics ? (o.metrics.trim().startsWith('{') ? o.metrics : readFileSync(o.metrics, 'utf8')) : undefined,
      tags: o.tag?.length ? JSON.stringify(o.tag) : undefined,
    },
    { hashing: (done) => hashing.update(done), uploading: (sent) => uploading.update(sent) },
  );
  hashing.stop();
  uploading.stop();
  if (o.json) {
    process.stdout.write(`${JSON.stringify(r)}\n`);
    return;
  }
  process.stdout.write(
    `published ${r.adapter}@${r.version} on ${r.base}: ${r.kind}, ${r.params.toLocaleString('en-US')} params ` +
      `(${r.params_pct_of_base.toFixed(2)}% of the base), ${formatBytes(r.bytes)}, sha256 ${r.sha256} ` +
      `(behavior ${r.behavior_sha256})` +
      `${r.alias ? `; ${r.alias} -> ${r.version}` : ''}\n`,
  );
}
