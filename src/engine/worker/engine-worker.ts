import { parentPort } from 'node:worker_threads';
import { Engine } from '../engine.ts';
import type { GenerateResult, TokenEvent } from '../generation/request.ts';
import { toWire, type FromWorker, type ToWorker, type WireError } from './protocol.ts';

/**
 * The engine's thread: session.run blocks its event loop, so it must not share one with HTTP.
 * Results are coalesced into one message per scheduler step.
 */
const port = parentPort!;
let engine: Engine | undefined;
const outbox = {
  tokens: [] as Array<[string, TokenEvent[]]>,
  done: [] as Array<[string, GenerateResult]>,
  errors: [] as Array<[string, WireError]>,
};
let flushScheduled = false;

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
  });
}

port.on('message', async (msg: ToWorker) => {
  switch (msg.type) {
    case 'load':
      try {
        engine = await Engine.load(msg.options);
        engine.onStep = (stats) => post({ type: 'step', stats, ...engine!.load });
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
    case 'generate':
      for (const { id, request } of msg.requests) {
        try {
          engine!.submit(id, request, {
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
          });
        } catch (e) {
          outbox.errors.push([id, toWire(e)]);
          flushSoon();
        }
      }
      return;
    case 'cancel':
      engine?.cancel(msg.id);
      return;
    case 'close':
      await engine?.close();
      port.close();
      return;
  }
});
