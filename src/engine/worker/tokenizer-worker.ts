import { parentPort, workerData } from 'node:worker_threads';
import { loadTokenizer } from '../tokenizer/load.ts';
import { TaskTokenizer } from '../tokenizer/task-tokens.ts';
import type { Tokenizer } from '../tokenizer/types.ts';
import type { FromTokenizer, ToTokenizer } from './tokenizer-thread.ts';

/** The tokenizer's thread (tokenizer-thread.ts): the engine's tokenizer, loaded again, encoding prompts. */
const { tokenizerPath, vocabSize } = workerData as { tokenizerPath: string; vocabSize: number };
const base = loadTokenizer(tokenizerPath);
/** The task-token tokenizers of recent adapters, by their task tokens. */
const withTasks = new Map<string, Tokenizer>();

function tokenizerFor(taskTokens: readonly string[]): Tokenizer {
  if (!taskTokens.length) return base;
  const key = JSON.stringify(taskTokens);
  let t = withTasks.get(key);
  if (!t) {
    if (withTasks.size >= 256) withTasks.clear();
    withTasks.set(key, (t = new TaskTokenizer(base, vocabSize, taskTokens)));
  }
  return t;
}

parentPort!.on('message', ({ call, text, taskTokens }: ToTokenizer) => {
  let reply: FromTokenizer;
  try {
    reply = { call, ids: tokenizerFor(taskTokens).encode(text) };
  } catch (e) {
    reply = { call, error: (e as Error).message };
  }
  parentPort!.postMessage(reply);
});
