import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { z } from 'zod';
import { EngineClient, type Generation } from '../../engine/worker/client.ts';
import { adapterKindOf } from '../../engine/adapters/load.ts';
import {
  RequestError,
  validateRequest,
  type GenerateRequest,
  type GenerateResult,
} from '../../engine/generation/request.ts';
import { describeIssue, SamplingFields, toEngineRequest } from '../../protocol/compute.ts';
import { parse, warn } from '../output.ts';
import { runtimeOf } from '../../engine/runtime-options.ts';
import { addRuntimeOptions, type RuntimeOptions } from './runtime-options.ts';

interface GenerateOptions extends RuntimeOptions {
  model: string;
  tokenizer?: string;
  adapter?: string;
  prompt?: string;
  promptIds?: number[];
  batch?: string;
  maxTokens?: number;
  temperature?: number;
  topK?: number;
  topP?: number;
  seed?: number;
  stop?: string[];
  ignoreEos?: boolean;
  logprobs?: number;
  json?: boolean;
}

export function register(program: Command): void {
  const command = program
    .command('generate')
    .description('generate text from a model, optionally through an adapter; or decode a JSONL batch together')
    .requiredOption('--model <path>', 'Hugging Face model folder or llama2.c checkpoint (.bin)')
    .option('--tokenizer <path>', 'tokenizer.json, its folder, or llama2.c tokenizer.bin (default: next to the model)')
    .option('--adapter <path>', 'PEFT LoRA or VLM adapter folder')
    .option('--prompt <text>', "prompt text (tokenized with the model's template, e.g. BOS first)")
    .option('--prompt-ids <ids>', 'comma-separated token ids, fed verbatim', parse.ids)
    .option('--batch <file.jsonl>', 'one request per line, decoded together as one batch (use with --json)')
    .option('--max-tokens <n>', 'tokens to generate at most (default 256)', parse.int(1))
    .option('--temperature <t>', '0 = greedy (default)', parse.number(0))
    .option('--top-k <k>', 'sample among the k most likely tokens', parse.int(0))
    .option('--top-p <p>', 'sample from the smallest set with this much probability', parse.number(0, 1))
    .option('--seed <s>', 'random seed: the same seed gives the same output', parse.int(Number.MIN_SAFE_INTEGER))
    .option('--stop <str>', 'stop when this text appears (repeatable)', parse.collect)
    .option('--ignore-eos', 'keep going past the end-of-sequence token')
    .option('--logprobs <n>', 'with --json: per-token logprobs plus n alternatives', parse.int(0))
    .option('--json', 'print one JSON object {tokens, text, finish_reason} (one per line with --batch)');
  addRuntimeOptions(command).action(run);
}

async function run(o: GenerateOptions): Promise<void> {
  const sources = [o.prompt !== undefined, o.promptIds !== undefined, o.batch !== undefined].filter(Boolean).length;
  if (sources > 1) throw new Error('give only one of --prompt, --prompt-ids and --batch');
  if (sources === 0) o.prompt = ''; // as llama2.c's run: generate from BOS alone
  if (o.batch && !o.json) throw new Error('--batch prints JSON lines: add --json');
  if (o.batch && o.adapter) throw new Error('with --batch, name adapters per line ("adapter": PATH)');
  const lines = o.batch ? readBatch(o.batch) : [{ adapter: o.adapter ?? null, request: requestFromFlags(o) }];

  const adapters = [...new Set(lines.map((l) => l.adapter).filter((a): a is string => !!a))];
  const engine = await EngineClient.start({
    model: o.model,
    adapterKinds: [...new Set(adapters.map(adapterKindOf))], // the graph carries only what is used
    tokenizer: o.tokenizer,
    ...runtimeOf(o),
    maxBatch: Math.max(64, lines.length),
    prefillChunkIdle: o.batch ? Number.MAX_SAFE_INTEGER : undefined, // the whole batch prefills together
  });
  try {
    for (const w of engine.info.warnings) warn(w);
    for (const dir of adapters) await engine.addAdapterFolder(dir, dir);
    const generations = engine.generateMany(lines.map((l) => ({ ...l.request, adapter: l.adapter })));
    if (o.json && o.batch) {
      // Rows fail alone: a failing row's line holds its error, in place; the others complete.
      let failed = 0;
      for (const g of generations) {
        const line = await toJson(g).catch((e: Error) => (failed++, { error: errorOf(e) }));
        process.stdout.write(`${JSON.stringify(line)}\n`);
      }
      if (failed) throw new Error(`${failed} of ${generations.length} rows failed (their lines hold the errors)`);
    } else if (o.json) {
      process.stdout.write(`${JSON.stringify(await toJson(generations[0]))}\n`);
    } else {
      for await (const event of generations[0]) process.stdout.write(event.text);
      await generations[0].result;
      if (process.stdout.isTTY) process.stdout.write('\n');
    }
  } finally {
    await engine.close();
  }
}

/** A row's error in the product's one shape (OpenAI's error object). */
function errorOf(e: Error) {
  const invalid = e instanceof RequestError;
  return {
    message: e.message,
    type: invalid ? 'invalid_request_error' : 'server_error',
    param: invalid ? (e.param ?? null) : null,
    code: null,
  };
}

function requestFromFlags(o: GenerateOptions): GenerateRequest {
  return {
    prompt: o.prompt,
    promptIds: o.promptIds,
    maxTokens: o.maxTokens,
    temperature: o.temperature,
    topK: o.topK,
    topP: o.topP,
    seed: o.seed,
    stop: o.stop,
    ignoreEos: o.ignoreEos,
    logprobs: o.logprobs,
  };
}

async function toJson(g: Generation) {
  const logprobs: Array<{ token: number; logprob?: number; top?: unknown }> = [];
  for await (const e of g)
    if (e.logprob !== undefined) logprobs.push({ token: e.token, logprob: e.logprob, top: e.top });
  const r: GenerateResult = await g.result;
  return { tokens: r.tokens, text: r.text, finish_reason: r.finishReason, ...(logprobs.length ? { logprobs } : {}) };
}

/** A --batch line: the compute protocol's fields, an adapter folder, and `stop` as one string or several. */
const BatchLine = SamplingFields.extend({
  adapter: z.string().min(1).nullable().optional(),
  stop: z.union([z.string(), z.array(z.string())]).optional(),
}).strict();

function readBatch(file: string): Array<{ adapter: string | null; request: GenerateRequest }> {
  const text = readFileSync(file, 'utf8');
  const lines = text
    .split('\n')
    .map((l, i) => ({ l: l.trim(), n: i + 1 }))
    .filter(({ l }) => l);
  if (!lines.length) throw new Error(`${file}: no requests`);
  return lines.map(({ l, n }) => {
    let json: unknown;
    try {
      json = JSON.parse(l);
    } catch {
      throw new Error(`${file}:${n}: not valid JSON`);
    }
    const parsed = BatchLine.safeParse(json);
    if (!parsed.success) throw new Error(`${file}:${n}: ${describeIssue(parsed.error).message}`);
    const { adapter, stop, ...fields } = parsed.data;
    const request = toEngineRequest({ ...fields, stop: typeof stop === 'string' ? [stop] : stop });
    try {
      validateRequest(request);
    } catch (e) {
      throw new Error(`${file}:${n}: ${(e as Error).message}`, { cause: e });
    }
    return { adapter: adapter ? resolve(adapter) : null, request };
  });
}
