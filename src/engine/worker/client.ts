import { Worker } from 'node:worker_threads';
import { randomUUID } from 'node:crypto';
import { AsyncQueue } from '../../util/async-queue.ts';
import type { AdapterManifest } from '../adapters/format.ts';
import type { AdapterFiles } from '../adapters/read.ts';
import type { EngineInfo, EngineOptions } from '../engine.ts';
import type { StepStats } from '../generation/scheduler.ts';
import { RequestError, type GenerateRequest, type GenerateResult, type TokenEvent } from '../generation/request.ts';
import type { FromWorker, ToWorker, WireError } from './protocol.ts';

/** The engine's thread started ahead of its first use (prestartEngineThread), until EngineClient.start takes it. */
let early: { worker: Worker; failed: boolean } | undefined;

/**
 * Starts the engine's thread now, before the command that will use it has loaded its own modules:
 * the thread's (onnxruntime's addon among them, about 0.1 s) load meanwhile, on the other core.
 * Unreferenced until EngineClient.start takes it, so a command that fails first still exits.
 */
export function prestartEngineThread(): void {
  if (early) return;
  const started = { worker: engineThread(), failed: false };
  started.worker.once('error', () => (started.failed = true));
  started.worker.once('exit', () => (started.failed = true));
  started.worker.unref();
  early = started;
}

function engineThread(): Worker {
  return new Worker(new URL('./bootstrap.mjs', import.meta.url));
}

/** The thread started early, if it is still alive; else a new one (which reports its failure, if any, as it loads). */
function takeEngineThread(): Worker {
  const taken = early;
  early = undefined;
  if (!taken || taken.failed) {
    if (taken) void taken.worker.terminate();
    return engineThread();
  }
  taken.worker.ref();
  return taken.worker;
}

/** A generation in flight: iterate it for tokens as they come; `result` settles at the end. */
export interface Generation extends AsyncIterable<TokenEvent> {
  readonly id: string;
  readonly result: Promise<GenerateResult>;
  cancel(): void;
}

type WithoutCall<T> = T extends unknown ? Omit<T, 'call'> : never;

class EngineError extends Error {
  override name = 'EngineError';
}

function fromWire(e: WireError): Error {
  if (e.name === 'RequestError') return new RequestError(e.message, e.param);
  const err = new EngineError(e.message);
  err.name = e.name;
  return err;
}

/**
 * The engine as seen from the main thread: it lives in a worker thread and is driven by messages.
 * The CLI, the compute node and the tests all talk to it through this class.
 */
export class EngineClient {
  private readonly running = new Map<
    string,
    { queue: AsyncQueue<TokenEvent>; resolve: (r: GenerateResult) => void; reject: (e: Error) => void }
  >();
  private readonly calls = new Map<number, { resolve: (m: FromWorker & { type: 'reply' }) => void }>();
  private nextCall = 0;
  onStep?: (stats: StepStats, load: { queued: number; active: number }) => void;

  private constructor(
    private readonly worker: Worker,
    readonly info: EngineInfo,
  ) {
    worker.on('message', (msg: FromWorker) => this.receive(msg));
    worker.on('error', (e) => this.failAll(e));
    worker.on('exit', () => this.failAll(new EngineError('the engine thread exited')));
  }

  static async start(options: EngineOptions): Promise<EngineClient> {
    const worker = takeEngineThread();
    const info = await new Promise<EngineInfo>((resolve, reject) => {
      const onMessage = (msg: FromWorker) => {
        if (msg.type === 'ready') resolve(msg.info);
        else if (msg.type === 'load-failed') reject(fromWire(msg.error));
        else return;
        worker.off('message', onMessage);
        worker.off('error', reject);
      };
      worker.on('message', onMessage);
      worker.on('error', reject);
      worker.postMessage({ type: 'load', options } satisfies ToWorker);
    }).catch(async (e) => {
      await worker.terminate();
      throw e;
    });
    return new EngineClient(worker, info);
  }

  /** Registers an adapter from its folder on disk. */
  addAdapterFolder(id: string, dir: string): Promise<AdapterManifest> {
    return this.call({ type: 'add-adapter', id, dir }).then(manifestOf);
  }

  /** Registers an adapter from its files' bytes (moved to the engine thread, not copied). */
  addAdapter(id: string, adapter: AdapterFiles): Promise<AdapterManifest> {
    const files = [...adapter.files];
    const transfer = files.map(([, bytes]) => bytes.buffer as ArrayBuffer).filter((b, i, all) => all.indexOf(b) === i);
    return this.call({ type: 'add-adapter', id, config: adapter.config, files }, transfer).then(manifestOf);
  }

  async removeAdapter(id: string): Promise<boolean> {
    return (await this.call({ type: 'remove-adapter', id })).removed ?? false;
  }

  /** The ids a text becomes as a prompt (under an adapter: its task tokens count). */
  async tokenize(text: string, adapter?: string | null): Promise<number[]> {
    return (await this.call({ type: 'tokenize', text, adapter })).tokens!;
  }

  /** The text of token ids. */
  async detokenize(tokens: number[], adapter?: string | null): Promise<string> {
    return (await this.call({ type: 'detokenize', tokens, adapter })).text!;
  }

  generate(request: GenerateRequest): Generation {
    return this.generateMany([request])[0];
  }

  /** Starts several requests together: they are admitted to the same first step (one batch). */
  generateMany(requests: GenerateRequest[]): Generation[] {
    const generations = requests.map(() => this.track(randomUUID()));
    this.post({ type: 'generate', requests: requests.map((request, i) => ({ id: generations[i].id, request })) });
    return generations;
  }

  private track(id: string): Generation {
    const queue = new AsyncQueue<TokenEvent>();
    let resolve!: (r: GenerateResult) => void;
    let reject!: (e: Error) => void;
    const result = new Promise<GenerateResult>((res, rej) => ((resolve = res), (reject = rej)));
    result.catch(() => {}); // consumers may only iterate; the queue reports the error then
    this.running.set(id, { queue, resolve, reject });
    return {
      id,
      result,
      cancel: () => this.post({ type: 'cancel', id }),
      [Symbol.asyncIterator]: () => queue[Symbol.asyncIterator](),
    };
  }

  /** Cancels every running generation (each finishes with finish_reason "cancelled"). */
  cancelAll(): void {
    for (const id of this.running.keys()) this.post({ type: 'cancel', id });
  }

  async close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      this.worker.once('exit', () => resolve());
      this.post({ type: 'close' });
    });
    return this.closing;
  }
  private closing?: Promise<void>;

  private post(msg: ToWorker, transfer: ArrayBuffer[] = []): void {
    this.worker.postMessage(msg, transfer);
  }

  private call(msg: WithoutCall<Extract<ToWorker, { call: number }>>, transfer: ArrayBuffer[] = []) {
    const call = this.nextCall++;
    return new Promise<FromWorker & { type: 'reply' }>((resolve, reject) => {
      this.calls.set(call, {
        resolve: (reply) => (reply.error ? reject(fromWire(reply.error)) : resolve(reply)),
      });
      this.post({ ...msg, call } as ToWorker, transfer);
    });
  }

  private receive(msg: FromWorker): void {
    switch (msg.type) {
      case 'reply':
        this.calls.get(msg.call)?.resolve(msg);
        this.calls.delete(msg.call);
        return;
      case 'batch':
        for (const { stats, queued, active } of msg.steps) this.onStep?.(stats, { queued, active });
        for (const [id, events] of msg.tokens) for (const e of events) this.running.get(id)?.queue.push(e);
        for (const [id, result] of msg.done) {
          const r = this.running.get(id);
          this.running.delete(id);
          r?.queue.end();
          r?.resolve(result);
        }
        for (const [id, wire] of msg.errors) {
          const r = this.running.get(id);
          this.running.delete(id);
          const error = fromWire(wire);
          r?.queue.end(error);
          r?.reject(error);
        }
        return;
    }
  }

  private failAll(error: Error): void {
    for (const [, r] of this.running) {
      r.queue.end(error);
      r.reject(error);
    }
    this.running.clear();
  }
}

function manifestOf(reply: { manifest?: AdapterManifest }): AdapterManifest {
  return reply.manifest!;
}
