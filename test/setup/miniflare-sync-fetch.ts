import workerThreads from 'node:worker_threads';

/**
 * A workaround for a race in miniflare 4's synchronous binding proxy (the D1 and R2 proxies of
 * wrangler's getPlatformProxy): fixed upstream in cloudflare/workers-sdk#15552 (miniflare 5), not
 * in the miniflare 4 that wrangler 4.86 pins.
 *
 * `SynchronousFetcher.fetch` posts a request to its worker thread, waits on a shared flag, then
 * takes the reply with `receiveMessageOnPort` and asserts its id. When the worker thread is
 * preempted between setting the flag for one reply and notifying, the late notify wakes the next
 * call before its reply exists: `receiveMessageOnPort` returns nothing and the assertion
 * (`message?.id === id`) fails, then every later call of that proxy fails too. It happened in this
 * suite's D1 tests on loaded 2-core machines. Here, for that caller only, an empty port is polled
 * until the reply arrives (every reply does arrive, in order), as the upstream fix waits for it.
 */
const receive = workerThreads.receiveMessageOnPort;
const pause = new Int32Array(new SharedArrayBuffer(4));
const WAIT_MS = 60_000;

workerThreads.receiveMessageOnPort = (port) => {
  const message = receive(port);
  if (message !== undefined || !new Error().stack?.includes('SynchronousFetcher')) return message;
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    Atomics.wait(pause, 0, 0, 1); // a millisecond's sleep: this thread is blocked on the reply anyway
    const late = receive(port);
    if (late !== undefined || Date.now() > deadline) return late;
  }
};
