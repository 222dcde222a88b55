import { InvalidArgumentError, Option, type Command } from 'commander';
import { EXECUTION_PROVIDERS } from '../../engine/runtime/providers.ts';
import { DTYPES } from '../../engine/model/precision.ts';
import { BLOCK_SIZES, DEFAULT_BLOCK, isBlockSize, QUANTIZATIONS } from '../../engine/weights/quantize.ts';
import type { EngineRuntime } from '../../engine/runtime-options.ts';
import { parse } from '../output.ts';

/** How an engine runs its model: what every command that loads one accepts. */
export type RuntimeOptions = Required<Pick<EngineRuntime, 'ep' | 'dtype' | 'quantize'>> & EngineRuntime;

/** Adds --ep, --threads, --dtype, --quantize, --quantize-block and --context to a command. */
export function addRuntimeOptions(command: Command): Command {
  return command
    .addOption(new Option('--ep <provider>', 'execution provider').choices(EXECUTION_PROVIDERS).default('cpu'))
    .option('--threads <n>', 'CPU threads (default: all cores)', parse.int(1))
    .addOption(
      new Option('--dtype <dtype>', 'serving dtype of float weights (auto: float32 on CPU, float16 on WebGPU)')
        .choices(DTYPES)
        .default('auto'),
    )
    .addOption(
      new Option('--quantize <q>', 'weight-only quantization of linear layers and head')
        .choices(QUANTIZATIONS)
        .default('none'),
    )
    .option(
      '--quantize-block <n>',
      `inputs per quantization block, ${BLOCK_SIZES} (default ${DEFAULT_BLOCK}, less for narrower models)`,
      quantizeBlock,
    )
    .option('--context <n>', "longest sequence to serve, prompt + output (default: the model's maximum)", parse.int(1));
}

/** --quantize-block's parser. */
export function quantizeBlock(value: string): number {
  const n = parse.int(1)(value);
  if (!isBlockSize(n)) throw new InvalidArgumentError(`expected ${BLOCK_SIZES}`);
  return n;
}
