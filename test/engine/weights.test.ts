import { mkdtempSync, writeFileSync, copyFileSync, readFileSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import onnxProto from 'onnx-proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixture, maxAbsDiff } from '../helpers/fixtures.ts';
import { adapterFor, greedyBatch, runnerFor, teacherForce } from '../helpers/engine.ts';
import { versa } from '../helpers/cli.ts';
import { openModel } from '../../src/engine/loaders/load.ts';
import { buildDecoderGraph } from '../../src/engine/graph/build.ts';
import { GraphBuilder, type EncodedGraph } from '../../src/engine/graph/onnx.ts';
import { dequantize, FLOAT32, quantizeRows } from '../../src/engine/weights/quantize.ts';
import { parseHeader, toFloat32 } from '../../src/engine/weights/safetensors.ts';
import { checkMemory, weightFormat } from '../../src/engine/model/precision.ts';
import { bytesAs, floatBytes } from '../../src/engine/weights/stored.ts';
import { perplexity } from '../../src/engine/eval/perplexity.ts';
import { EngineClient } from '../../src/engine/worker/client.ts';
import type { ModelRunner } from '../../src/engine/runtime/runner.ts';

const STORIES = () => fixture('stories260k/model.bin');
const STORIES_TOKENIZER = () => fixture('stories260k/tokenizer.bin');
const STORY = join(import.meta.dirname, '../fixtures/perplexity/story.txt');
const REFERENCE = JSON.parse(readFileSync(join(import.meta.dirname, '../fixtures/perplexity/expected.json'), 'utf8'));

/** The same graph with every weight embedded in the protobuf, as initializers with raw data. */
function inlined(graph: EncodedGraph): Uint8Array {
  const { onnx } = onnxProto;
  const model = onnx.ModelProto.decode(graph.model);
  const bytes = new Map(graph.externalData.map((e) => [e.path, e.data]));
  for (const t of model.graph!.initializer!) {
    if (t.dataLocation !== onnx.TensorProto.DataLocation.EXTERNAL) continue;
    t.rawData = bytes.get(t.externalData!.find((e) => e.key === 'location')!.value!)!;
    t.externalData = [];
    t.dataLocation = onnx.TensorProto.DataLocation.DEFAULT;
  }
  return onnx.ModelProto.encode(model).finish();
}

describe('weight-only quantization', () => {
  it('round-to-nearest per block: every value within half a step of its block', () => {
    const rows = 5;
    const cols = 100; // not a multiple of the block: the last block is padded
    const w = Float32Array.from({ length: rows * cols }, (_, i) => Math.sin(i * 0.37) * (1 + (i % 13)));
    for (const bits of [4, 8] as const) {
      const q = quantizeRows(w, rows, cols, bits, 32);
      expect(q.packed.length).toBe((rows * Math.ceil(cols / 32) * 32 * bits) / 8);
      const back = dequantize(q);
      for (let i = 0; i < w.length; i++) {
        const scale = q.scales[Math.floor(i / cols) * q.blocks + Math.floor((i % cols) / 32)];
        expect(Math.abs(back[i] - w[i])).toBeLessThanOrEqual(scale / 2 + 1e-6);
      }
    }
  });

  it("packs exactly as onnxruntime's MatMulNBits and GatherBlockQuantized read", async () => {
    const [N, K] = [6, 80];
    const w = Float32Array.from({ length: N * K }, (_, i) => Math.cos(i * 0.11) * 0.05);
    const x = Float32Array.from({ length: 2 * K }, (_, i) => Math.sin(i * 0.7));
    for (const bits of [4, 8] as const) {
      const q = quantizeRows(w, N, K, bits, 16);
      const g = new GraphBuilder();
      g.input('x', 'float32', ['M', K]);
      g.input('ids', 'int64', ['I']);
      const packed = g.weight('b', 'uint8', [N, q.blocks, (q.block * bits) / 8], q.packed);
      const rows = g.weight('rows', 'uint8', [N, (q.blocks * q.block * bits) / 8], q.packed);
      const scales = g.weight('s', 'float32', [N, q.blocks], new Uint8Array(q.scales.buffer));
      const zeros = g.weight('z', 'uint8', [N, q.zeroPoints.length / N], q.zeroPoints);
      const attrs = { K, N, bits, block_size: 16, accuracy_level: 0 }; // float compute: exact to rounding
      g.output(g.op('MatMulNBits', ['x', packed, scales, zeros], attrs, undefined, 'com.microsoft'), 'y', 'float32', [
        'M',
        N,
      ]);
      const gather = { bits, block_size: 16, gather_axis: 0, quantize_axis: 1 };
      g.output(
        g.op('GatherBlockQuantized', [rows, 'ids', scales, zeros], gather, undefined, 'com.microsoft'),
        'e',
        'float32',
        ['I', K],
      );
      const graph = g.encode();
      const session = await ort.InferenceSession.create(graph.model, { externalData: graph.externalData });
      const out = await session.run({
        x: new ort.Tensor('float32', x, [2, K]),
        ids: new ort.Tensor('int64', BigInt64Array.of(3n, 0n), [2]),
      });
      const ref = dequantize(q);
      const expected = new Float32Array(2 * N);
      for (let m = 0; m < 2; m++)
        for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) expected[m * N + n] += x[m * K + k] * ref[n * K + k];
      expect(maxAbsDiff(out.y.data as Float32Array, expected)).toBeLessThan(1e-5);
      expect(maxAbsDiff(out.e.data as Float32Array, [...ref.subarray(3 * K, 4 * K), ...ref.subarray(0, K)])).toBe(0);
      await session.release();
    }
  });
});

describe('weights outside the graph', () => {
  it('the graph carries no weight bytes, and gives the same logits as the weights embedded in it', async () => {
    const model = openModel(STORIES());
    const graph = buildDecoderGraph(model.config, model.weights, { vlm: false, lora: false });
    const weightBytes = graph.externalData.reduce((n, e) => n + e.data.byteLength, 0); // made from the open file
    model.close();
    expect(graph.model.byteLength).toBeLessThan(200_000);
    expect(weightBytes).toBeGreaterThan(model.fileBytes * 0.95); // every weight (plus RoPE tables)

    const feeds = (s: ort.InferenceSession) => {
      const c = model.config;
      const f: Record<string, ort.Tensor> = {
        input_ids: new ort.Tensor('int64', BigInt64Array.of(1n, 403n, 407n), [1, 3]),
        position_ids: new ort.Tensor('int64', BigInt64Array.of(0n, 1n, 2n), [1, 3]),
        past_length: new ort.Tensor('int64', BigInt64Array.of(0n), [1]),
        last_index: new ort.Tensor('int64', BigInt64Array.of(0n, 1n, 2n), [3]),
      };
      for (let l = 0; l < c.numLayers; l++) {
        f[`past_key.${l}`] = new ort.Tensor('float32', new Float32Array(0), [1, c.numKvHeads, 0, c.headDim]);
        f[`past_value.${l}`] = new ort.Tensor('float32', new Float32Array(0), [1, c.numKvHeads, 0, c.headDim]);
      }
      return s.run(f);
    };
    const external = await ort.InferenceSession.create(graph.model, { externalData: graph.externalData });
    const embedded = await ort.InferenceSession.create(inlined(graph));
    const a = (await feeds(external)).logits.data as Float32Array;
    const b = (await feeds(embedded)).logits.data as Float32Array;
    expect(a.length).toBe(3 * 512);
    expect(maxAbsDiff(a, b)).toBe(0);
    await Promise.all([external.release(), embedded.release()]);
  });
});

describe('float types', () => {
  it('float32 -> float16 rounds to the nearest half (every half round-trips) and bfloat16 to nearest even', () => {
    const halves = Uint16Array.from({ length: 65536 }, (_, i) => i).filter(
      (h) => (h & 0x7c00) !== 0x7c00 || !(h & 0x3ff),
    ); // no NaNs
    const values = toFloat32(new Uint8Array(halves.buffer), 'F16');
    expect(new Uint16Array(floatBytes(values, 'float16').buffer)).toEqual(halves);
    const between = Float32Array.of(1 + 2 ** -11, 1 + 3 * 2 ** -11, 65520, 1e-8); // ties to even, overflow, underflow
    expect([...new Uint16Array(floatBytes(between, 'float16').buffer)]).toEqual([0x3c00, 0x3c02, 0x7c00, 0]);
    const bf = Float32Array.of(1.00390625, 1.01171875, -3.5);
    expect([...new Uint16Array(floatBytes(bf, 'bfloat16').buffer)]).toEqual([0x3f80, 0x3f82, 0xc060]);
  });

  it('weights stored in the serving type are passed on as read; others are converted', () => {
    const bytes = new Uint8Array([0, 60, 0, 188]); // float16 1, -1
    const f16 = { dims: [2], dtype: 'F16' as const, bytes: () => bytes };
    expect(bytesAs(f16, 'float16')).toBe(bytes);
    expect([...new Float32Array(bytesAs(f16, 'float32').buffer)]).toEqual([1, -1]);
  });

  it("auto: float32 on the CPU, float16 on WebGPU, the checkpoint's half type on CUDA", () => {
    const c = readJsonConfig();
    const float = (ep: 'cpu' | 'cuda' | 'webgpu', stored: 'F32' | 'F16' | 'BF16') =>
      weightFormat(c, {}, ep, stored).float;
    expect([
      float('cpu', 'BF16'),
      float('cuda', 'BF16'),
      float('webgpu', 'BF16'),
      float('webgpu', 'F32'),
      float('cuda', 'F16'),
      float('cuda', 'F32'),
    ]).toEqual(['float32', 'bfloat16', 'float16', 'float16', 'float16', 'float32']);
    expect(weightFormat(c, { dtype: 'float16' }, 'cpu', 'F32').float).toBe('float16');
  });

  it("quantizes in blocks of 64 by default, in the largest block a narrower model's layers take", () => {
    const block = (hiddenSize: number, quantizeBlock?: number) =>
      weightFormat({ ...readJsonConfig(), hiddenSize }, { quantize: 'int4', quantizeBlock }, 'cpu', 'F32').block;
    // The 3B shape's layers take 3072 inputs and more; hidden sizes below 64 narrow the default.
    expect([block(3072), block(64), block(48), block(32), block(16)]).toEqual([64, 64, 32, 32, 16]);
    expect(block(3072, 32)).toBe(32);
    expect(() => block(32, 64)).toThrow(/block size 64 is larger than the model's smallest layer input \(32\)/);
  });
});

describe('float16 weights', () => {
  it('hold half the bytes and score stories260K within 0.1 % of float32', async () => {
    const model = openModel(STORIES());
    const half = buildDecoderGraph(
      model.config,
      model.weights,
      { vlm: false, lora: false },
      { ...FLOAT32, float: 'float16' },
    );
    const full = buildDecoderGraph(model.config, model.weights, { vlm: false, lora: false });
    const matrices = (g: EncodedGraph) =>
      g.externalData.filter((e) => e.data.byteLength > 4096).reduce((n, e) => n + e.data.byteLength, 0);
    expect(matrices(half) / matrices(full)).toBeCloseTo(0.5, 1);
    model.close();

    const { code, stdout, stderr } = await versa([
      'eval',
      'perplexity',
      '--model',
      STORIES(),
      '--tokenizer',
      STORIES_TOKENIZER(),
      '--text',
      STORY,
      '--json',
      '--dtype',
      'float16',
    ]);
    expect(code, stderr).toBe(0);
    expect(Math.abs(JSON.parse(stdout).perplexity / REFERENCE.full.perplexity - 1)).toBeLessThan(1e-3);
  });
});

describe('quantized bases serve adapters in mixed batches', () => {
  for (const quantize of ['int8', 'int4'] as const) {
    describe(quantize, () => {
      let runner: ModelRunner;
      beforeAll(async () => {
        runner = await runnerFor(fixture('tiny-gpt2'), { ...FLOAT32, quantize, block: 16 });
      });
      afterAll(() => runner?.release());

      it('rows of VLM, LoRA and no adapter decode together exactly as each row alone', async () => {
        const prompts = [[98, 15, 214, 7], [52, 204, 11, 999, 3, 640], [195, 731], [5]];
        const names = ['vglm-a', 'lora-c', undefined, 'vglm-b'];
        const rows = prompts.map((prompt, i) => ({
          prompt,
          adapter: names[i] ? adapterFor(runner, fixture('tiny-gpt2/adapters', names[i]!)) : undefined,
        }));
        const together = await greedyBatch(runner, rows, 10);
        for (let i = 0; i < rows.length; i++) {
          const alone = await greedyBatch(runner, [rows[i]], 10);
          expect(together.tokens[i]).toEqual(alone.tokens[0]);
          // Batched and single-row kernels sum in different orders: float32 rounding, no more.
          together.logits[i].forEach((l, t) => expect(maxAbsDiff(l, alone.logits[0][t])).toBeLessThan(1e-6));
        }
        // The adapters still act on the quantized base.
        const base = await greedyBatch(runner, [{ prompt: prompts[0] }], 10);
        expect(maxAbsDiff(base.logits[0][0], together.logits[0][0].subarray(0, 1000))).toBeGreaterThan(1e-3);
      });
    });
  }
});

describe('versa eval perplexity', () => {
  const args = (...extra: string[]) => [
    'eval',
    'perplexity',
    '--model',
    STORIES(),
    '--tokenizer',
    STORIES_TOKENIZER(),
    '--text',
    STORY,
    '--json',
    ...extra,
  ];

  it('float32 equals an independent PyTorch computation (whole text, and windows of 64 tokens)', async () => {
    for (const [extra, expected] of [
      [[], REFERENCE.full],
      [['--context', '64'], REFERENCE.context64],
    ] as const) {
      const { code, stdout, stderr } = await versa(args(...extra));
      expect(code, stderr).toBe(0);
      const got = JSON.parse(stdout);
      expect(got.tokens).toBe(expected.tokens);
      expect(Math.abs(got.perplexity / expected.perplexity - 1)).toBeLessThan(1e-4);
      expect(Math.abs(got.nll / expected.nll - 1)).toBeLessThan(1e-4);
    }
  });

  it('int8 stays within 2 % of float32 and int4 within 25 % on stories260K', async () => {
    const fp32 = REFERENCE.full.perplexity;
    for (const [quantize, tolerance] of [
      ['int8', 0.02],
      ['int4', 0.25],
    ] as const) {
      const { code, stdout, stderr } = await versa(args('--quantize', quantize));
      expect(code, stderr).toBe(0);
      expect(Math.abs(JSON.parse(stdout).perplexity / fp32 - 1)).toBeLessThan(tolerance);
    }
  });

  it("scores an adapter's model (VLM task token after BOS, as context) like its decode path", async () => {
    const { stdout, code, stderr } = await versa(args('--adapter', fixture('stories260k/adapters/vlm-max')));
    expect(code, stderr).toBe(0);
    const adapted = JSON.parse(stdout);
    expect(adapted.tokens).toBe(REFERENCE.full.tokens); // the task token is context, not a target
    expect(Math.abs(adapted.perplexity / REFERENCE.full.perplexity - 1)).toBeGreaterThan(0.01);

    // The same score from the logits of one-token-at-a-time decoding through the KV cache.
    const runner = await runnerFor(STORIES());
    try {
      const adapter = adapterFor(runner, fixture('stories260k/adapters/vlm-max'));
      const text = REFERENCE.token_ids as number[];
      const ids = [text[0], 512, ...text.slice(1)];
      const logits = await teacherForce(runner, ids, adapter);
      let nll = 0;
      for (let t = 1; t + 1 < ids.length; t++) nll -= logSoftmax(logits[t], ids[t + 1]);
      expect(Math.abs(adapted.nll / (nll / (ids.length - 2)) - 1)).toBeLessThan(1e-5);
    } finally {
      await runner.release();
    }
  });

  it('a window of one token scores nothing; a text shorter than two tokens is refused', async () => {
    const runner = await runnerFor(STORIES());
    try {
      const ids = (REFERENCE.token_ids as number[]).slice(0, 9);
      const r = await perplexity(runner, ids, { context: 4 }); // windows 4 + 4 + 1
      expect(r).toMatchObject({ tokens: 6, windows: 3 });
      await expect(perplexity(runner, [1])).rejects.toThrow(/at least 2 tokens/);
    } finally {
      await runner.release();
    }
  });
});

describe('bad precision and model inputs fail in one line', () => {
  const gen = (...extra: string[]) =>
    versa(['generate', '--model', STORIES(), '--tokenizer', STORIES_TOKENIZER(), '--max-tokens', '2', ...extra]);
  const oneLine = (r: { code: number | null; stderr: string }, message: RegExp) => {
    expect(r.code).not.toBe(0);
    expect(
      r.stderr
        .trim()
        .split('\n')
        .filter((l) => !l.startsWith('npm warn')),
    ).toHaveLength(1);
    expect(r.stderr).toMatch(message);
  };

  it('int4 without --quantize-block on a model 32 wide (tiny GPT-2) takes blocks of 32', async () => {
    const r = await versa([
      'generate',
      '--model',
      fixture('tiny-gpt2'),
      '--prompt-ids',
      '5',
      '--max-tokens',
      '2',
      '--quantize',
      'int4',
      '--ignore-eos',
      '--json',
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).tokens).toHaveLength(2);
  });

  it('unknown quantization, bad block sizes and unsupported dtypes', async () => {
    oneLine(await gen('--quantize', 'int3'), /int3.*invalid.*none, int8, int4/);
    oneLine(await gen('--quantize', 'int4', '--quantize-block', '33'), /power of two from 16 to 256/);
    oneLine(
      await gen('--quantize', 'int4', '--quantize-block', '128'),
      /block size 128 is larger than the model's smallest layer input \(64\)/,
    );
    oneLine(await gen('--dtype', 'bfloat16'), /bfloat16 needs --ep cuda: the cpu provider has no bfloat16 kernels/);
    oneLine(await gen('--context', '100000'), /context 100000 exceeds the model's maximum of 512/);
  });

  it('a missing or truncated shard, and a model too large for memory', async () => {
    const sharded = mkdtempSync(join(tmpdir(), 'versa-shards-'));
    copyFileSync(fixture('stories260k/hf/config.json'), join(sharded, 'config.json'));
    copyFileSync(fixture('stories260k/hf/model.safetensors'), join(sharded, 'model-00001-of-00002.safetensors'));
    const bytes = readFileSync(fixture('stories260k/hf/model.safetensors'));
    const names = [...parseHeader(bytes, bytes.length).tensors.keys()];
    const weightMap = Object.fromEntries(names.map((n, i) => [n, `model-0000${1 + (i % 2)}-of-00002.safetensors`]));
    writeFileSync(join(sharded, 'model.safetensors.index.json'), JSON.stringify({ weight_map: weightMap }));
    oneLine(
      await versa(['generate', '--model', sharded, '--prompt-ids', '1', '--max-tokens', '1']),
      /shard model-00002-of-00002.safetensors is missing/,
    );

    copyFileSync(fixture('stories260k/hf/model.safetensors'), join(sharded, 'model-00002-of-00002.safetensors'));
    truncateSync(join(sharded, 'model-00002-of-00002.safetensors'), 100_000);
    oneLine(
      await versa(['generate', '--model', sharded, '--prompt-ids', '1', '--max-tokens', '1']),
      /model-00002-of-00002.safetensors: .*(truncated|past the)/,
    );

    expect(() => checkMemory(readJsonConfig(), FLOAT32, 16e9)).toThrow(
      /needs about 25\.\d GB .* float32 but this machine has 16\.0 GB \(try --quantize int4\)/,
    );
    expect(() => checkMemory(readJsonConfig(), { ...FLOAT32, quantize: 'int4' }, 16e9)).not.toThrow();
  });

  it('--context caps the sequence the engine serves', async () => {
    const engine = await EngineClient.start({
      model: STORIES(),
      tokenizer: STORIES_TOKENIZER(),
      threads: 2,
      context: 16,
    });
    try {
      await expect(engine.generate({ promptIds: Array(17).fill(1) }).result).rejects.toThrow(
        /17 tokens but the context is 16/,
      );
      const r = await engine.generate({ promptIds: [1], maxTokens: 100, ignoreEos: true }).result;
      expect(r.tokens.length).toBe(16);
    } finally {
      await engine.close();
    }
  });
});

/** A 3.2B-parameter Llama config (Llama 3.2 3B's shape), for the memory check. */
function readJsonConfig() {
  return {
    architecture: 'llama' as const,
    vocabSize: 128256,
    hiddenSize: 3072,
    numLayers: 28,
    numHeads: 24,
    numKvHeads: 8,
    headDim: 128,
    intermediateSize: 8192,
    maxPositions: 4096,
    normEps: 1e-5,
    tiedEmbeddings: true,
  };
}

function logSoftmax(logits: Float32Array, index: number): number {
  const max = Math.max(...logits);
  return logits[index] - max - Math.log(logits.reduce((s, v) => s + Math.exp(v - max), 0));
}
