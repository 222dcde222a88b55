import { Worker } from 'node:worker_threads';
import type { PromptEncoder } from '../engine.ts';
import { TokenizerError } from '../tokenizer/types.ts';

/** Messages between a TokenizerThread and its thread (tokenizer-worker.ts). */
export type ToTokenizer = { call: number; text: string; taskTokens: readonly string[] };
export type FromTokenizer = { call: number; ids?: number[]; error?: string };

/**
 * Prompts tokenized in a thread of their own. The engine thread runs the decode loop; a prompt of
 * 100 KB takes a tokenizer tenths of a second, which on that thread would stall every running
 * row's next token. Here it only waits, and the steps go on. Calls are answered in order.
 */
export class TokenizerThread implements PromptEncoder {
  private readonly worker: Worker;
  private readonly calls = new Map<number, { resolve: (ids: number[]) => void; reject: (e: Error) => void }>();
  private nextCall = 0;

  constructor(tokenizerPath: string, vocabSize: number) {
    this.worker = new Worker(new URL('./bootstrap.mjs', import.meta.url), {
      workerData: { entry: './tokenizer-worker.ts', tokenizerPath, vocabSize },
    });
    this.worker.unref(); // an idle tokenizer keeps nothing alive
    this.worker.on('message', ({ call, ids, error }: FromTokenizer) => {
      const c = this.calls.get(call);
      this.calls.delete(call);
      if (error !== undefined) c?.reject(new TokenizerError(error));
      else c?.resolve(ids!);
    });
    const failAll = (e: Error) => {
      for (const c of this.calls.values()) c.reject(e);
      this.calls.clear();
    };
    this.worker.on('error', failAll);
    this.worker.on('exit', () => failAll(new TokenizerError('the tokenizer thread exited')));
  }

  /** The tokenizer thread's id (it is not the caller's). */
  get threadId(): number {
    return this.worker.threadId;
  }

  encode(text: string, taskTokens: readonly string[]): Promise<number[]> {
    const call = this.nextCall++;
    return new Promise((resolve, reject) => {
      this.calls.set(call, { resolve, reject });
      this.worker.postMessage({ call, text, taskTokens } satisfies ToTokenizer);
    });
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }
}
