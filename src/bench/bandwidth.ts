import { availableParallelism } from 'node:os';
import ort from 'onnxruntime-node';
import { GraphBuilder } from '../engine/graph/onnx.ts';
import { createSession } from '../engine/runtime/session.ts';
import type { ExecutionProvider } from '../engine/runtime/providers.ts';

/** Sums of the same data, each over its own layout (so that no optimizer merges them): a GPU run reads it 8 times. */
const DEVICE_READS = [64, 128, 256, 512, 1024, 2048, 4096, 8192];

/**
 * Memory-read bandwidth as onnxruntime itself achieves it on this machine, now: the best of
 * several ReduceSum layouts over 512 MB of random floats (larger than any cache), with the same
 * thread count as the engine. Measured in the same run as the decode numbers, so the roofline
 * ratio holds on shared, noisy machines. On a GPU provider (WebGPU) it is the device memory's: the
 * data is copied to the device once, then each run sums it in eight layouts (a run's fixed cost,
 * a round trip, would otherwise weigh on one pass over 512 MB, about 0.15 ms on an H200).
 */
export async function measureReadBandwidth(
  threads = availableParallelism(),
  megabytes = 512,
  ep: ExecutionProvider = 'cpu',
): Promise<number> {
  const n = (megabytes * 1024 * 1024) / 4;
  const data = new Float32Array(n);
  let s = 12345;
  for (let i = 0; i < n; i++) data[i] = (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
  if (ep !== 'cpu') return deviceReadBandwidth(data, ep);
  const g = new GraphBuilder();
  g.input('x', 'float32', ['R', 'C']);
  g.output(g.op('ReduceSum', ['x', g.ints([1])], { keepdims: 0 }), 'y', 'float32', ['R']);
  const session = await ort.InferenceSession.create(g.encode().model, {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
  });
  let best = 0;
  for (const rows of [64, 1024]) {
    const x = new ort.Tensor('float32', data, [rows, n / rows]);
    await session.run({ x });
    for (let k = 0; k < 5; k++) {
      const t = performance.now();
      await session.run({ x });
      best = Math.max(best, (n * 4) / ((performance.now() - t) / 1000) / 1e9);
    }
  }
  await session.release();
  return best;
}

async function deviceReadBandwidth(data: Float32Array, ep: ExecutionProvider): Promise<number> {
  const upload = new GraphBuilder();
  upload.input('x', 'float32', ['N']);
  upload.output(upload.op('Identity', ['x']), 'y', 'float32', ['N']);
  const sums = new GraphBuilder();
  sums.input('x', 'float32', ['N']);
  const parts = DEVICE_READS.map((rows) =>
    sums.op('ReduceSum', [sums.op('Reshape', ['x', sums.ints([rows, -1])]), sums.ints([1])], { keepdims: 0 }),
  );
  sums.output(sums.concat(parts, 0), 'y', 'float32', ['S']);
  const [uploader, summer] = await Promise.all([
    createSession(upload.encode(), ep, { threads: 1, deviceOutputs: ['y'] }),
    createSession(sums.encode(), ep, { threads: 1 }),
  ]);
  try {
    const onDevice = (await uploader.session.run({ x: new ort.Tensor('float32', data, [data.length]) })).y;
    let best = 0;
    await summer.session.run({ x: onDevice });
    for (let k = 0; k < 5; k++) {
      const t = performance.now();
      await summer.session.run({ x: onDevice });
      best = Math.max(best, (DEVICE_READS.length * data.length * 4) / ((performance.now() - t) / 1000) / 1e9);
    }
    onDevice.dispose();
    return best;
  } finally {
    await Promise.all([uploader.session.release(), summer.session.release()]);
  }
}
