import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ModelConfig } from '../engine/model/config.ts';
import {
  randomWeights,
  writeByteTokenizer,
  writeGpt2Folder,
  writeLoraAdapter,
  writeVlmAdapter,
} from '../engine/synthetic.ts';

/** The demo's names, used by seeding, the banner and the docs. */
export const DEMO = {
  base: 'versa-demo',
  writer: 'demo-writer',
  critic: 'demo-critic',
  taskToken: '<|story|>',
  note: 'demo weights: random, so the text is noise. Serve a real model with: npx versa start --model PATH --name NAME',
} as const;

export interface DemoFiles {
  model: string;
  tokenizer: string;
  writerV1: string;
  writerV2: string;
  critic: string;
}

/**
 * A small GPT-2-shaped model with seeded random weights and a byte-level tokenizer, plus demo
 * adapters: all produced offline, on first start, under `<home>/demo`. Nothing is downloaded.
 */
export function ensureDemoFiles(home: string): DemoFiles {
  const root = join(home, 'demo');
  const files: DemoFiles = {
    model: join(root, 'model'),
    tokenizer: join(root, 'tokenizer.bin'),
    writerV1: join(root, 'adapters', 'writer-v1'),
    writerV2: join(root, 'adapters', 'writer-v2'),
    critic: join(root, 'adapters', 'critic'),
  };
  if (existsSync(join(root, 'READY'))) return files;
  mkdirSync(root, { recursive: true });
  const vocab = writeByteTokenizer(files.tokenizer);
  const config: ModelConfig = {
    architecture: 'gpt2',
    vocabSize: vocab,
    hiddenSize: 128,
    numLayers: 4,
    numHeads: 4,
    numKvHeads: 4,
    headDim: 32,
    intermediateSize: 512,
    maxPositions: 512,
    normEps: 1e-5,
    tiedEmbeddings: true,
    bosTokenId: 1,
    eosTokenId: 2,
  };
  writeGpt2Folder(files.model, config, randomWeights(config, 7));
  writeFileSync(join(files.model, 'README.md'), `# ${DEMO.base}\n\n${DEMO.note}\n`);
  writeVlmAdapter(files.writerV1, config, 16, 11, [DEMO.taskToken]);
  writeVlmAdapter(files.writerV2, config, 32, 12, [DEMO.taskToken]);
  writeLoraAdapter(files.critic, config, 4, ['attn.c_attn', 'mlp.c_fc'], 13);
  for (const [dir, card] of [
    [files.writerV1, 'Demo VLM adapter (bottleneck 16, task token <|story|>), random weights.'],
    [files.writerV2, 'Demo VLM adapter, second version (bottleneck 32), random weights.'],
    [files.critic, 'Demo LoRA adapter (rank 4 on c_attn and c_fc), random weights.'],
  ])
    writeFileSync(join(dir, 'README.md'), `# Demo adapter\n\n${card}\n`);
  writeFileSync(join(root, 'READY'), '');
  return files;
}
