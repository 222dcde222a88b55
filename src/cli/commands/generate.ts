import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { z } from 'zod';
import { EngineClient, type Generation } from '../../engine/worker/client.ts';
import { adapterKindOf } from '../../engine/adapters/load.ts';
import { AdapterFormatError, type AdapterKind } from '../../engine/adapters/format.ts';
import {
  RequestError,
  validateRequest,
  type GenerateRequest,
  type GenerateResult,
} from '../../engine/generation/request.ts';
import { describeIssue, SamplingFields, toEngineRequest } from '../../protocol/compute.ts';
import { parse, warn } from '../output.ts';
import { runtimeOf } from '../../engine/runtime-options.ts';
import { weightCacheFromEnv } from '../../engine/weights/cache.ts';
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
    .option(
      '--json',
      'print one JSON object {tokens, text, finish_reason} (one per line with --batch; `choices` for n > 1)',
    );
  addRuntimeOptions(command).action(run);
}

async function run(o: GenerateOptions): Promise<void> {
  const sources = [o.prompt !== undefined, o.promptIds !== undefined, o.batch !== undefined].filter(Boolean).length;
  if (sources > 1) throw new Error('give only one of --prompt, --prompt-ids and --batch');
  if (sources === 0) o.prompt = ''; // as llama2.c's run: generate from BOS alone
  if (o.batch && !o.json) throw new Error('--batch prints JSON lines: add --json');
  if (o.batch && o.adapter) throw new Error('with --batch, name adapters per line ("adapter": PATH)');
  if (o.batch) return runBatch(o, o.batch);

  const engine = await EngineClient.start({
    model: o.model,
    adapterKinds: o.adapter ? [adapterKindOf(o.adapter)] : [], // the graph carries only what is used
    maxBatch: 1, // one prompt, one row: float weights are then served unpacked (engine.ts, prepackWeights)
    tokenizer: o.tokenizer,
    ...runtimeOf(o),
    weightCache: weightCacheFromEnv(),
  });
  try {
    for (const w of engine.info.warnings) warn(w);
    if (o.adapter) await engine.addAdapterFolder(o.adapter, o.adapter);
    const generation = engine.generate({ ...requestFromFlags(o), adapter: o.adapter ?? null });
    if (o.json) {
      process.stdout.write(`${JSON.stringify(await toJson(generation))}\n`);
    } else {
      for await (const event of generation) process.stdout.write(event.text);
      await generation.result;
      if (process.stdout.isTTY) process.stdout.write('\n');
    }
  } finally {
    await engine.close();
  }
}

/**
 * `--batch`: the rows decode together; rows fail alone. Whatever a row gets wrong (its JSON, its
 * fields, its adapter folder, its prompt) becomes its own `{"error"}` line, in place, naming
 * FILE:LINE; the other rows complete. Exit status 1 when any row failed.
 */
async function runBatch(o: GenerateOptions, file: string): Promise<void> {
  const rows = readBatch(file);
  const adapters = [...new Set(rows.flatMap((r) => (r.adapter && !r.error ? [r.adapter] : [])))];
  const refused = new Map<string, Error>(); // adapter folders the engine cannot take, with why
  const kinds = new Set<AdapterKind>();
  for (const dir of adapters) {
    try {
      kinds.add(adapterKindOf(dir));
    } catch (e) {
      refused.set(dir, e as Error);
    }
  }
  const engine = await EngineClient.start({
    model: o.model,
    adapterKinds: [...kinds], // the graph carries only what is used
    tokenizer: o.tokenizer,
    ...runtimeOf(o),
    weightCache: weightCacheFromEnv(),
    maxBatch: Math.max(
      64,
      rows.reduce((n, r) => n + (r.request?.n ?? 1), 0),
    ), // a row takes n rows
    prefillChunkIdle: Number.MAX_SAFE_INTEGER, // the whole batch prefills together
  });
  try {
    for (const w of engine.info.warnings) warn(w);
    for (const dir of adapters.filter((d) => !refused.has(d)))
      await engine.addAdapterFolder(dir, dir).catch((e: Error) => refused.set(dir, e));
    for (const row of rows) {
      const why = row.adapter && refused.get(row.adapter);
      if (!why || row.error) continue;
      const message = why.message.includes(row.adapter!) ? why.message : `adapter ${row.adapter}: ${why.message}`;
      row.error = new RequestError(message, 'adapter');
    }
    const runnable = rows.filter((r) => !r.error);
    const generations = engine.generateMany(runnable.map((r) => ({ ...r.request!, adapter: r.adapter })));
    const failed: string[] = [];
    for (const row of rows) {
      const g = row.error ? undefined : generations[runnable.indexOf(row)];
      const json = g ? echoOf(engine, row).then((echo) => toJson(g, echo)) : Promise.reject(row.error);
      const line = await json.catch((e: Error) => {
        const error = errorOf(e, `${file}:${row.line}: `);
        failed.push(error.message);
        return { error };
      });
      process.stdout.write(`${JSON.stringify(line)}\n`);
    }
    if (failed.length)
      throw new Error(
        `${failed.length} of ${rows.length} rows failed (their lines hold the errors); first: ${failed[0]}`,
      );
  } finally {
    await engine.close();
  }
}

/** A row's error in the product's one shape (OpenAI's error object), its message prefixed with where. */
function errorOf(e: Error, where: string) {
  const invalid = e instanceof RequestError || e instanceof AdapterFormatError;
  return {
    message: `${where}${e.message}`,
    type: invalid ? 'invalid_request_error' : 'server_error',
    param: e instanceof RequestError ? (e.param ?? null) : null,
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

/**
 * A generation as one JSON object: choice 0's tokens, text and finish, `choices` when the request
 * asked for n > 1, and `logprobs` (with each entry's choice `index` then); `echo` goes before the text.
 */
async function toJson(g: Generation, echo = '') {
  const logprobs: Array<{ index?: number; token: number; logprob?: number; top?: unknown }> = [];
  for await (const e of g) {
    if (e.logprob === undefined) continue;
    logprobs.push({ ...(e.index ? { index: e.index } : {}), token: e.token, logprob: e.logprob, top: e.top });
  }
  const r: GenerateResult = await g.result;
  const choices = r.choices?.map((c) => ({
    index: c.index,
    tokens: c.tokens,
    text: echo + c.text,
    finish_reason: c.finishReason,
  }));
  return {
    tokens: r.tokens,
    text: echo + r.text,
    finish_reason: r.finishReason,
    ...(choices ? { choices } : {}),
    ...(logprobs.length ? { logprobs } : {}),
  };
}

/** A row's prompt text when it asks for echo (a prompt of token ids decoded), else nothing. */
async function echoOf(engine: EngineClient, row: BatchRow): Promise<string> {
  if (!row.echo || !row.request) return '';
  return row.request.prompt ?? engine.detokenize(row.request.promptIds!, row.adapter);
}

/**
 * A --batch line: the compute protocol's fields (`n` included), an adapter folder, `stop` as one
 * string or several, and completions' `echo` (the prompt's text before the output's).
 */
const BatchLine = SamplingFields.extend({
  adapter: z.string().min(1).nullable().optional(),
  stop: z.union([z.string(), z.array(z.string())]).optional(),
  echo: z.boolean().optional(),
}).strict();

/** A --batch line, parsed and checked; `error` when the line itself is at fault (it fails alone). */
interface BatchRow {
  line: number;
  adapter: string | null;
  request?: GenerateRequest;
  echo?: boolean;
  error?: Error;
}

function readBatch(file: string): BatchRow[] {
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
      return { line: n, adapter: null, error: new RequestError('not valid JSON') };
    }
    const parsed = BatchLine.safeParse(json);
    if (!parsed.success) {
      const issue = describeIssue(parsed.error);
      return { line: n, adapter: null, error: new RequestError(issue.message, issue.param ?? undefined) };
    }
    const { adapter, stop, echo, ...fields } = parsed.data;
    const request = toEngineRequest({ ...fields, stop: typeof stop === 'string' ? [stop] : stop });
    const row: BatchRow = { line: n, adapter: adapter ? resolve(adapter) : null, request, echo };
    try {
      validateRequest(request);
    } catch (e) {
      row.error = e as Error;
    }
    return row;
  });
}
