import { availableParallelism } from 'node:os';
import ort from 'onnxruntime-node';
import { GraphBuilder } from '../engine/graph/onnx.ts';

/**
 * Memory-read bandwidth as onnxruntime itself achieves it on this machine, now: the best of
 * several ReduceSum layouts over 512 MB of random floats (larger than any cache), with the same
 * thread count as the engine. Measured in the same run as the decode numbers, so the roofline
 * ratio holds on shared, noisy machines.
 */
export async function measureReadBandwidth(threads = availableParallelism(), megabytes = 512): Promise<number> {
  const n = (megabytes * 1024 * 1024) / 4;
  const data = new Float32Array(n);
  let s = 12345;
  for (let i = 0; i < n; i++) data[i] = (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
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
