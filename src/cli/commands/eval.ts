import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { SingleBar, Presets } from 'cli-progress';
import { runtimeOf } from '../../engine/runtime-options.ts';
import { weightCacheFromEnv } from '../../engine/weights/cache.ts';
import { addRuntimeOptions, type RuntimeOptions } from './runtime-options.ts';

interface EvalOptions extends RuntimeOptions {
  model: string;
  tokenizer?: string;
  adapter?: string;
  text: string;
  json?: boolean;
}

/** `versa eval perplexity`: how well a base model (quantized or not), or an adapter's model, predicts a text. */
export function register(program: Command): void {
  const evaluate = program.command('eval').description('evaluate a model on a text');
  const command = evaluate
    .command('perplexity')
    .description('perplexity of a text, in consecutive windows of --context tokens')
    .requiredOption('--model <path>', 'Hugging Face model folder or llama2.c checkpoint (.bin)')
    .option('--tokenizer <path>', 'tokenizer.json, its folder, or llama2.c tokenizer.bin (default: next to the model)')
    .option('--adapter <path>', 'score the model of this PEFT LoRA or VLM adapter folder')
    .requiredOption('--text <file>', 'the text (UTF-8), tokenized as --prompt is (BOS first for models that use one)')
    .option('--json', 'print {"tokens", "nll", "perplexity"}');
  addRuntimeOptions(command).action(run);
}

async function run(o: EvalOptions): Promise<void> {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(readFileSync(o.text));
  } catch (e) {
    throw new Error(
      `${o.text}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`,
      { cause: e },
    );
  }
  const { openRuntime } = await import('../../engine/engine.ts');
  const { adapterKindOf, loadAdapterFolder } = await import('../../engine/adapters/load.ts');
  const { perplexity } = await import('../../engine/eval/perplexity.ts');
  const kinds = o.adapter ? [adapterKindOf(o.adapter)] : [];
  const { runner, tokenizer, info } = await openRuntime({
    model: o.model,
    tokenizer: o.tokenizer,
    adapterKinds: kinds,
    ...runtimeOf(o),
    weightCache: weightCacheFromEnv(),
  });
  try {
    if (!tokenizer) throw new Error(`no tokenizer found for ${o.model}: give --tokenizer`);
    const adapter = o.adapter ? loadAdapterFolder(o.adapter, info.config, 'eval') : undefined;
    let ids = tokenizer.encode(text);
    // A VLM adapter's task tokens follow the template's prefix (BOS), as its prompts were trained.
    const prefix = tokenizer.template.prefix.length;
    const task = adapter?.kind === 'vlm' ? adapter.taskTokens.map((_, k) => info.config.vocabSize + k) : [];
    ids = [...ids.slice(0, prefix), ...task, ...ids.slice(prefix)];
    const unscored = new Set(task.map((_, k) => prefix + k));
    const bad = ids.find((t, i) => !unscored.has(i) && t >= info.config.vocabSize);
    if (bad !== undefined)
      throw new Error(`the text encodes to token id ${bad}, outside the model's vocabulary (${info.config.vocabSize})`);
    if (adapter) runner.bank.acquire(adapter);
    const bar = process.stderr.isTTY
      ? new SingleBar(
          { stream: process.stderr, format: 'perplexity [{bar}] {value}/{total} windows', hideCursor: true },
          Presets.shades_classic,
        )
      : undefined;
    const result = await perplexity(runner, ids, {
      context: o.context ?? info.config.maxPositions,
      adapter: adapter?.id,
      unscored,
      onWindow: (done, total) => (done === 1 ? bar?.start(total, done) : bar?.update(done)),
    });
    bar?.stop();
    const out = { tokens: result.tokens, nll: result.nll, perplexity: result.perplexity };
    process.stdout.write(
      o.json
        ? `${JSON.stringify(out)}\n`
        : `perplexity ${result.perplexity.toFixed(4)} (mean NLL ${result.nll.toFixed(5)} nats ` +
            `over ${result.tokens} tokens, ${result.windows} window(s))\n`,
    );
  } finally {
    await runner.release();
  }
}
