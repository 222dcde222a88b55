import { parentPort } from 'node:worker_threads';
import { Engine } from '../engine.ts';
import type { SequenceSink } from '../generation/sequence.ts';
import type { GenerateResult, TokenEvent } from '../generation/request.ts';
import { toWire, type FromWorker, type ToWorker, type WireError } from './protocol.ts';
import { TokenizerThread } from './tokenizer-thread.ts';

/**
 * The engine's thread: session.run blocks its event loop, so it must not share one with HTTP.
 * Prompts are tokenized in a thread of their own (tokenizer-thread.ts), so this one only runs
 * steps. Results, and the step's own figures, are coalesced into one message per scheduler step
 * (each message wakes the receiving thread: on a busy machine, a turn on a core).
 */
const port = parentPort!;
let engine: Engine | undefined;
const outbox = {
  tokens: [] as Array<[string, TokenEvent[]]>,
  done: [] as Array<[string, GenerateResult]>,
  errors: [] as Array<[string, WireError]>,
  steps: [] as Extract<FromWorker, { type: 'batch' }>['steps'],
};
let flushScheduled = false;
/** Requests whose prompts are being tokenized; a cancel that comes meanwhile is kept for when they start. */
const admitting = new Set<string>();
const cancelledEarly = new Set<string>();

function post(message: FromWorker): void {
  port.postMessage(message);
}

function flushSoon(): void {
  if (flushScheduled) return;
  flushScheduled = true;
  queueMicrotask(() => {
    flushScheduled = false;
    post({ type: 'batch', ...outbox });
    outbox.tokens = [];
    outbox.done = [];
    outbox.errors = [];
    outbox.steps = [];
  });
}

port.on('message', async (msg: ToWorker) => {
  switch (msg.type) {
    case 'load':
      try {
        engine = await Engine.load(msg.options, (path, vocab) => new TokenizerThread(path, vocab));
        engine.onStep = (stats) => {
          outbox.steps.push({ stats, ...engine!.load });
          flushSoon();
        };
        post({ type: 'ready', info: engine.info });
      } catch (e) {
        post({ type: 'load-failed', error: toWire(e) });
      }
      return;
    case 'add-adapter':
      try {
        const manifest = msg.dir
          ? engine!.addAdapterFolder(msg.dir, msg.id)
          : engine!.addAdapter(msg.id, { config: msg.config, files: new Map(msg.files) });
        post({ type: 'reply', call: msg.call, manifest });
      } catch (e) {
        post({ type: 'reply', call: msg.call, error: toWire(e) });
      }
      return;
    case 'remove-adapter':
      post({ type: 'reply', call: msg.call, removed: engine!.removeAdapter(msg.id) });
      return;
    case 'tokenize':
      try {
        post({ type: 'reply', call: msg.call, tokens: await engine!.tokenize(msg.text, msg.adapter) });
      } catch (e) {
        post({ type: 'reply', call: msg.call, error: toWire(e) });
      }
      return;
    case 'detokenize':
      try {
        post({ type: 'reply', call: msg.call, text: engine!.detokenize(msg.tokens, msg.adapter) });
      } catch (e) {
        post({ type: 'reply', call: msg.call, error: toWire(e) });
      }
      return;
    case 'generate': {
      // The requests of one message are admitted together, then start in the same step.
      for (const { id } of msg.requests) admitting.add(id);
      const admitted = await Promise.allSettled(msg.requests.map(({ request }) => engine!.admit(request)));
      msg.requests.forEach(({ id }, i) => {
        admitting.delete(id);
        const cancelled = cancelledEarly.delete(id);
        const a = admitted[i];
        if (a.status === 'rejected') return sinkOf(id).onError(a.reason as Error);
        if (!cancelled) return engine!.start(id, a.value, sinkOf(id));
        const promptTokens = a.value.prompt.length;
        sinkOf(id).onDone({ tokens: [], text: '', finishReason: 'cancelled', promptTokens, completionTokens: 0 });
      });
      return;
    }
    case 'cancel':
      if (admitting.has(msg.id)) cancelledEarly.add(msg.id);
      else engine?.cancel(msg.id);
      return;
    case 'close':
      await engine?.close();
      port.close();
      return;
  }
});

function sinkOf(id: string): SequenceSink {
  return {
    onTokens: (events) => {
      outbox.tokens.push([id, events]);
      flushSoon();
    },
    onDone: (result) => {
      outbox.done.push([id, result]);
      flushSoon();
    },
    onError: (error) => {
      outbox.errors.push([id, toWire(error)]);
      flushSoon();
    },
  };
}
