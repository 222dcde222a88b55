import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import onnxProto from 'onnx-proto';
import ort from 'onnxruntime-node';
import { describe, expect, it, vi } from 'vitest';
import { fixture } from '../helpers/fixtures.ts';
import { runnerFor } from '../helpers/engine.ts';
import { openModel } from '../../src/engine/loaders/load.ts';
import { buildDecoderGraph } from '../../src/engine/graph/build.ts';
import { FLOAT32, type WeightFormat } from '../../src/engine/weights/quantize.ts';
import type { GraphFeatures } from '../../src/engine/graph/adapters.ts';
import type { KvCache } from '../../src/engine/runtime/kv-cache.ts';

/**
 * The decoder graph is built from onnxruntime's fused kernels, as onnxruntime-genai's model builder
 * builds it: one node per norm (with the residual add), one RotaryEmbedding per rotated tensor, one
 * product for q/k/v and one for gate/up. Each node costs a dispatch per step, so the count per
 * layer is what decode speed at small batches depends on (the goldens check that it is exact).
 */
const NO_ADAPTERS: GraphFeatures = { vlm: false, lora: false };
const INT4: WeightFormat = { ...FLOAT32, quantize: 'int4' };

function graphOf(path: string, format: WeightFormat = FLOAT32, features = NO_ADAPTERS) {
  const model = openModel(fixture(path));
  try {
    const nodes = (layers: number) => {
      const built = buildDecoderGraph({ ...model.config, numLayers: layers }, model.weights, features, format);
      return onnxProto.onnx.ModelProto.decode(built.model).graph!.node!;
    };
    const layers = model.config.numLayers;
    const all = nodes(layers);
    const count = (type: string) => all.filter((n) => n.opType === type).length;
    // What one more block adds: the embedding, head and shared shapes are counted once.
    const perLayer = nodes(2).length - nodes(1).length;
    return { count, layers, perLayer };
  } finally {
    model.close();
  }
}

const LLAMA_FAMILY = [
  'stories260k/model.bin',
  ...['llama3', 'qwen2', 'qwen3', 'mistral', 'phi3', 'gemma', 'gemma2'].map((a) => `archs/${a}`),
];

describe('fused decoder graph', () => {
  it.each(LLAMA_FAMILY)('%s: fused norms, rotary and products, at most 35 nodes a block', (path) => {
    const { count, layers, perLayer } = graphOf(path);
    expect(count('RotaryEmbedding')).toBe(2 * layers);
    // Every residual add but the last meets the next norm in one node.
    expect(count('SkipSimplifiedLayerNormalization')).toBe(2 * layers - 1);
    // RMSNorm is never spelled out as Pow/ReduceMean/Sqrt/Div (nor RoPE as Slice/Concat arithmetic).
    for (const op of ['Pow', 'ReduceMean', 'Sqrt', 'Div', 'Slice']) expect(count(op), op).toBe(0);
    // q/k/v, o, gate/up and down: four products a layer, plus the head.
    expect(count('Gemm')).toBe(4 * layers);
    // 31 for Llama (69 unfused), of which the CPU provider folds 3 (see the next test); Qwen3's
    // per-head norms and Gemma 2's extra norms and soft-capping add a few. Without LoRA, q/k/v go
    // head-major in one Reshape and Transpose, then a Split (four nodes fewer than split first).
    expect(perLayer).toBeLessThanOrEqual(35);
  });

  it("every layer's new keys and values leave in one output (a GPU reads each output back in a round trip)", () => {
    const model = openModel(fixture('archs/qwen2'));
    try {
      const built = buildDecoderGraph(model.config, model.weights, NO_ADAPTERS, FLOAT32);
      const outputs = onnxProto.onnx.ModelProto.decode(built.model).graph!.output!.map((o) => o.name);
      expect(outputs.sort()).toEqual(['logits', 'new_kv']);
    } finally {
      model.close();
    }
  });

  it("the score products are MatMuls fused by the CPU optimizer with the keys' transpose, unscaled", async () => {
    // WebGPU has no FusedMatMul kernel: in the built graph it would send every layer's scores
    // through the CPU. On the CPU each product and its keys' transpose are one node, with alpha 1:
    // only then does MLAS take its one-row kernel, which reads the cached keys in place instead of
    // copying them into a packed panel at every step (the queries carry the scale).
    const model = openModel(fixture('stories260k/model.bin'));
    const dir = mkdtempSync(join(tmpdir(), 'versa-fused-'));
    try {
      const built = buildDecoderGraph(model.config, model.weights, NO_ADAPTERS, FLOAT32);
      const kinds = (nodes: onnxProto.onnx.INodeProto[]) => nodes.filter((n) => n.opType === 'FusedMatMul');
      expect(kinds(onnxProto.onnx.ModelProto.decode(built.model).graph!.node!)).toHaveLength(0);
      const optimizedModelFilePath = join(dir, 'cpu.onnx');
      const session = await ort.InferenceSession.create(built.model, {
        externalData: built.externalData,
        graphOptimizationLevel: 'all',
        optimizedModelFilePath,
        logSeverityLevel: 3,
      });
      await session.release();
      const fused = kinds(onnxProto.onnx.ModelProto.decode(readFileSync(optimizedModelFilePath)).graph!.node!);
      const attribute = (n: onnxProto.onnx.INodeProto, name: string) => n.attribute!.find((a) => a.name === name);
      expect(fused).toHaveLength(2 * model.config.numLayers); // past keys, new keys
      for (const n of fused) {
        expect(attribute(n, 'alpha')?.f ?? 1).toBe(1);
        expect(Number(attribute(n, 'transB')?.i)).toBe(1);
      }
    } finally {
      model.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('int4: four MatMulNBits a layer (q/k/v and gate/up stacked before quantizing)', () => {
    const { count, layers } = graphOf('archs/llama3', INT4);
    expect(count('MatMulNBits')).toBe(4 * layers + 1);
  });

  it('GPT-2: each residual add and the LayerNorm after it are one SkipLayerNormalization', () => {
    const { count, layers, perLayer } = graphOf('tiny-gpt2');
    expect(perLayer).toBe(29); // 34 before its c_attn went head-major whole and its no-op Reshape went
    expect(count('SkipLayerNormalization')).toBe(2 * layers - 1);
    expect(count('LayerNormalization')).toBe(2); // the first block's input and the head's
  });

  it('with adapters, a VLM adapter between blocks keeps the add and the norm apart', () => {
    const { count, layers } = graphOf('stories260k/model.bin', FLOAT32, { vlm: true, lora: true });
    expect(count('RotaryEmbedding')).toBe(2 * layers);
    expect(count('SkipSimplifiedLayerNormalization')).toBe(layers); // after attention only
  });

  it('a decode step feeds the cache as its own buffers and nothing else that grows with the context', async () => {
    const runner = await runnerFor(fixture('stories260k/model.bin'));
    try {
      const session = (runner as unknown as { session: ort.InferenceSession }).session;
      const run = vi.spyOn(session, 'run');
      const prompt = Array.from({ length: 200 }, (_, i) => 1 + (i % 300));
      await runner.run([{ row: 0, tokens: prompt.slice(0, 3), position: 0 }]);
      await runner.run([{ row: 0, tokens: [5], position: 3 }]);
      await runner.run([{ row: 0, tokens: prompt.slice(3), position: 3 }]);
      await runner.run([{ row: 0, tokens: [5], position: 200 }]);
      const [short, long] = [run.mock.calls[1][0], run.mock.calls[3][0]] as Array<Record<string, ort.Tensor>>;
      expect(long['past_key.0'].dims.at(-2)).toBeGreaterThan(short['past_key.0'].dims.at(-2)!);
      const otherBytes = (feeds: Record<string, ort.Tensor>) =>
        Object.entries(feeds)
          .filter(([name]) => !name.startsWith('past_'))
          .map(([name, t]) => [name, (t.data as ArrayBufferView).byteLength]);
      expect(otherBytes(long)).toEqual(otherBytes(short));
      for (let l = 0; l < runner.config.numLayers; l++) {
        const own = (runner.cache as KvCache).slices(l, 0, 1);
        expect((long[`past_key.${l}`].data as Float32Array).buffer).toBe(own.keys.buffer);
        expect((long[`past_value.${l}`].data as Float32Array).buffer).toBe(own.values.buffer);
      }
    } finally {
      await runner.release();
    }
  });
});
