import workerThreads, { MessageChannel, Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';

/** The workaround of miniflare-sync-fetch.ts (a setup file: already installed here). */
describe("miniflare's synchronous proxy workaround", () => {
  const { port1, port2 } = new MessageChannel();
  let worker: Worker | undefined;
  afterEach(() => worker?.terminate());

  it('a SynchronousFetcher woken before its reply exists waits for the reply instead of getting nothing', () => {
    const reply = 'setTimeout(() => workerData.port.postMessage({ id: 7 }), 100);';
    worker = new Worker(`const { workerData } = require('node:worker_threads'); ${reply}`, {
      eval: true,
      workerData: { port: port2 },
      transferList: [port2],
    });
    // Named as miniflare's class is: the caller the workaround recognises by its stack.
    class SynchronousFetcher {
      take() {
        return workerThreads.receiveMessageOnPort(port1)?.message;
      }
    }
    expect(new SynchronousFetcher().take()).toEqual({ id: 7 });
  });

  // Were it to wait, it would wait a minute: past this test's timeout.
  it('any other caller still gets nothing at once from an empty port', () => {
    expect(workerThreads.receiveMessageOnPort(port1)).toBeUndefined();
  }, 10_000);
});
