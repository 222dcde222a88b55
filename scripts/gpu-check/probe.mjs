// The smallest WebGPU check: one Add through onnxruntime-node's WebGPU provider (node probe.mjs webgpu).
import { createRequire } from 'node:module';
const require = createRequire(`${process.cwd()}/`);
const ort = require('onnxruntime-node');
const { onnx } = require('onnx-proto');
const ep = process.argv[2] ?? 'webgpu';
const io = (name) => ({ name, type: { tensorType: { elemType: 1, shape: { dim: [{ dimValue: 4 }] } } } });
const graph = { name: 'g', node: [{ opType: 'Add', input: ['a', 'b'], output: ['c'] }], input: [io('a'), io('b')] };
const model = onnx.ModelProto.encode(
  onnx.ModelProto.create({ irVersion: 8, opsetImport: [{ version: 17 }], graph: { ...graph, output: [io('c')] } }),
).finish();
const session = await ort.InferenceSession.create(model, { executionProviders: [ep] });
const tensor = (x) => new ort.Tensor('float32', Float32Array.from(x), [4]);
const out = await session.run({ a: tensor([1, 2, 3, 4]), b: tensor([10, 20, 30, 40]) });
console.log(`probe on ${ep}: [${Array.from(out.c.data)}] (expected [11,22,33,44])`);
