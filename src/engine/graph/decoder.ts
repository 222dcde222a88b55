import type { ModelConfig } from '../model/config.ts';
import { layerPrefix, linearModules } from '../model/layout.ts';
import { transpose2d, type Tensor } from '../weights/tensor.ts';
import { bytesAs, float32Of, floatBytes, type StoredTensor, type WeightSource } from '../weights/stored.ts';
import {
  bitsOf,
  FLOAT32,
  quantizedShape,
  quantizeRows,
  type QuantizedMatrix,
  type QuantizedShape,
  type WeightFormat,
} from '../weights/quantize.ts';
import { VLM_LAYER_NORM_EPS } from '../adapters/format.ts';
import { GraphBuilder, type BuiltGraph } from './onnx.ts';
import { IN, LOGITS, loraInputs, MASKED, newKey, newValue, pastKey, pastValue, vlmInputs } from './io.ts';

/**
 * The pieces every decoder-only architecture shares, on top of the I/O contract in io.ts:
 * embeddings with task tokens, attention over a JS-owned KV cache, LoRA-adapted projections,
 * VLM residual adapters and the output head. The per-architecture builders (gpt2.ts, llama.ts, ...)
 * only wire these together. Activations are token-major [N, d].
 */
/** The adapter kinds a graph serves. */
export interface GraphFeatures {
  vlm: boolean;
  lora: boolean;
}
export const ALL_FEATURES: GraphFeatures = { vlm: true, lora: true };

/**
 * How a checkpoint stores a projection: PyTorch nn.Linear [out, in], or GPT-2's Conv1D [in, out].
 * Float weights are used as stored (Gemm transposes on the fly, at no cost once prepacked);
 * quantized ones are packed along `in`.
 */
export type MatrixLayout = 'out_in' | 'in_out';

/**
 * A weight matrix as the graph reads it: float as stored (in the format's float type), or
 * quantized rows of [out, in] (`packed` quantizes them when first asked for).
 */
type Matrix =
  | { kind: 'float'; name: string; layout: MatrixLayout }
  | {
      kind: 'quantized';
      names: { packed: string; scales: string; zeroPoints: string };
      q: QuantizedShape;
      packed: () => Uint8Array;
    };

/**
 * The token-embedding table, which the head also reads when tied: float32 transposed to [d, V]
 * (see head()), or quantized [V, d] rows that both GatherBlockQuantized and MatMulNBits read.
 */
export type EmbeddingTable = { kind: 'float'; tableT: string } | Extract<Matrix, { kind: 'quantized' }>;

export class DecoderGraph {
  readonly g = new GraphBuilder();
  private readonly gathered = new Map<string, string>();
  private readonly halved = new Map<string, string>();
  private readonly constants = new Map<string, string>();
  /** Shape [B, S] of the batch, and the attention bias shaped for grouped-query heads. */
  private readonly batchShape: string;
  private readonly bias: string;
  private readonly splitSizes: string;
  private ropeTables?: { cos: string; sin: string };
  private readonly windowBiases = new Map<number, string>();

  constructor(
    readonly c: ModelConfig,
    private readonly weights: WeightSource,
    /** Which adapter kinds the graph serves; an unused kind costs its ops on every step. */
    readonly features: GraphFeatures = ALL_FEATURES,
    readonly format: WeightFormat = FLOAT32,
  ) {
    const g = this.g;
    const { numLayers, hiddenSize: d, numKvHeads: kvh, headDim: hd } = c;
    g.input(IN.inputIds, 'int64', ['B', 'S']);
    g.input(IN.positionIds, 'int64', ['B', 'S']);
    g.input(IN.attnBias, 'float32', ['B', 'S', 'T']);
    g.input(IN.lastIndex, 'int64', ['L']);
    if (features.vlm) {
      g.input(IN.taskIndex, 'int64', ['B', 'S']);
      g.input(IN.taskEmbeddings, 'float32', ['TaskRows', d]);
      g.input(IN.taskHead, 'float32', ['U', d, 'K']);
      g.input(IN.vlmGather, 'int64', ['U', 'R']);
      g.input(IN.vlmScatter, 'int64', ['N']);
      g.input(IN.headGather, 'int64', ['U', 'Rh']);
      g.input(IN.headScatter, 'int64', ['L']);
    }
    if (features.lora) {
      g.input(IN.loraGather, 'int64', ['Ul', 'Rl']);
      g.input(IN.loraScatter, 'int64', ['N']);
    }
    for (let l = 0; l < numLayers; l++) {
      g.input(pastKey(l), 'float32', ['B', kvh, hd, 'P']);
      g.input(pastValue(l), 'float32', ['B', kvh, 'P', hd]);
      if (features.vlm) {
        const v = vlmInputs(l);
        g.input(v.down, 'float32', ['U', d, `m${l}`]);
        g.input(v.downB, 'float32', ['U', 1, `m${l}`]);
        g.input(v.up, 'float32', ['U', `m${l}`, d]);
        g.input(v.upB, 'float32', ['U', 1, d]);
      }
      if (features.lora) {
        for (const m of linearModules(c)) {
          const io = loraInputs(l, m.name);
          g.input(io.a, 'float32', ['Ul', m.in, `r${l}.${m.name}`]);
          g.input(io.b, 'float32', ['Ul', `r${l}.${m.name}`, m.out]);
        }
      }
    }
    this.batchShape = g.op('Shape', [IN.inputIds]);
    // Queries of the G heads that share a key/value head are stacked as G*S rows: tile the bias.
    this.bias = this.grouped(IN.attnBias);
    const pastLen = g.op('Shape', [pastKey(0)], { start: 3 });
    const newLen = g.op('Shape', [IN.inputIds], { start: 1 });
    this.splitSizes = g.concat([pastLen, newLen], 0);
  }

  /** A [B, S, T] bias as the grouped-query scores [B, Hkv, G*S, T] read it. */
  private grouped(bias: string): string {
    const g = this.g;
    const groups = this.c.numHeads / this.c.numKvHeads;
    const bias4 = g.unsqueeze(bias, [1]);
    return groups > 1 ? g.op('Tile', [bias4, g.ints([1, 1, groups, 1])]) : bias4;
  }

  /**
   * The attention bias of a sliding-window layer: also masks the keys `size` or more positions
   * behind the query (transformers: a query at i sees keys j with i - size < j <= i). Cache
   * column t holds position t; the new tokens are at their position_ids.
   */
  private windowBias(size: number): string {
    let out = this.windowBiases.get(size);
    if (out) return out;
    const g = this.g;
    const queries = g.unsqueeze(IN.positionIds, [2]); // [B, S, 1]
    const capacity = g.op('Squeeze', [g.op('Shape', [pastKey(0)], { start: 3 }), g.ints([0])]);
    const zero = g.op('Squeeze', [g.ints([0]), g.ints([0])]);
    const one = g.op('Squeeze', [g.ints([1]), g.ints([0])]);
    const cached = g.op('Range', [zero, capacity, one]); // [P]
    const behind = [g.sub(queries, cached), g.sub(queries, g.unsqueeze(IN.positionIds, [1]))];
    const distance = g.concat(behind, 2); // [B, S, P + S]: how far each key is behind the query
    const far = g.op('GreaterOrEqual', [distance, g.ints([size])]);
    out = this.grouped(g.op('Where', [far, g.scalar(MASKED), IN.attnBias]));
    this.windowBiases.set(size, out);
    return out;
  }

  /** cap * tanh(x / cap) (Gemma 2's soft-capping). */
  softcap(x: string, cap: number): string {
    const g = this.g;
    return g.mul(g.op('Tanh', [g.mul(x, g.scalar(1 / cap))]), g.scalar(cap));
  }

  /** A float32 weight by its Hugging Face name, as stored (norms, biases, position embeddings). */
  w(name: string): string {
    const t = this.stored(name);
    return this.g.weight(name, 'float32', t.dims, () => floatBytes(float32Of(t), 'float32'));
  }

  /** A weight as the checkpoint stores it (nothing is read yet). */
  private stored(name: string): StoredTensor {
    const t = this.weights.get(name);
    if (!t) throw new Error(`weight ${name} is missing`);
    return t;
  }

  /** A weight's values as float32 (read from the checkpoint now, converted if stored as 16 bits). */
  private float(name: string): Tensor {
    const t = this.stored(name);
    return { dims: [...t.dims], data: float32Of(t) };
  }

  /** Whether the checkpoint has a weight (optional biases). */
  has(name: string): boolean {
    return this.weights.has(name);
  }

  /** A projection's weight matrix, in the graph's weight format. */
  private matrix(name: string, layout: MatrixLayout): Matrix {
    const stored = this.stored(name);
    const float = this.format.float;
    if (this.format.quantize === 'none')
      return { kind: 'float', name: this.g.weight(name, float, stored.dims, () => bytesAs(stored, float)), layout };
    const [rows, cols] = layout === 'in_out' ? [stored.dims[1], stored.dims[0]] : stored.dims;
    const q = quantizedShape(rows, cols, bitsOf(this.format.quantize), this.format.block);
    // Quantized once, when the first of its three weights is asked for.
    let made: QuantizedMatrix | undefined;
    const quantized = () => {
      if (made) return made;
      const t = layout === 'in_out' ? transpose2d(this.float(name)) : this.float(name);
      return (made = quantizeRows(t.data, rows, cols, q.bits, q.block));
    };
    const g = this.g;
    const names = {
      packed: g.weight(`${name}.q`, 'uint8', [rows, q.blocks, (q.block * q.bits) / 8], () => quantized().packed),
      scales: g.weight(`${name}.scales`, 'float32', [rows, q.blocks], () => floatBytes(quantized().scales, 'float32')),
      zeroPoints: g.weight(`${name}.zero_points`, 'uint8', [rows, q.zeroPointBytes], () => quantized().zeroPoints),
    };
    return { kind: 'quantized', names, q, packed: () => quantized().packed };
  }

  /**
   * x [N, in] times a matrix: Gemm or MatMul for float weights (in float16/bfloat16 the product
   * is taken in that type, x cast to it and the result back), MatMulNBits for quantized weights.
   */
  private times(x: string, m: Matrix): string {
    const g = this.g;
    if (m.kind === 'float') {
      const xs = this.inFloatType(x);
      const y = m.layout === 'in_out' ? g.matmul(xs, m.name) : g.op('Gemm', [xs, m.name], { transB: 1 });
      return this.format.float === 'float32' ? y : g.cast(y, 'float32');
    }
    const { q, names } = m;
    const attrs = { K: q.cols, N: q.rows, bits: q.bits, block_size: q.block, accuracy_level: 4 };
    return g.op('MatMulNBits', [x, names.packed, names.scales, names.zeroPoints], attrs, undefined, 'com.microsoft');
  }

  /** x in the float type of the weights (one Cast per value, shared by the projections that read it). */
  private inFloatType(x: string): string {
    if (this.format.float === 'float32') return x;
    let out = this.halved.get(x);
    if (!out) this.halved.set(x, (out = this.g.cast(x, this.format.float)));
    return out;
  }

  /** A [V, d] vocabulary matrix: the token embeddings, or an untied output head (see EmbeddingTable). */
  vocabTable(name: string): EmbeddingTable {
    if (this.format.quantize !== 'none') return this.matrix(name, 'out_in') as EmbeddingTable;
    const [V, d] = this.stored(name).dims;
    const tableT = () => floatBytes(transpose2d(this.float(name)).data, this.format.float);
    return { kind: 'float', tableT: this.g.weight(name, this.format.float, [d, V], tableT) };
  }

  /** Token embeddings [N, d]; a row's task tokens take their embedding from its VLM slot. */
  embed(table: EmbeddingTable, positions?: string): string {
    const g = this.g;
    const d = this.c.hiddenSize;
    let x: string;
    if (table.kind === 'float') {
      x = g.transpose(g.gather(table.tableT, IN.inputIds, 1), [1, 2, 0]); // [d, B, S] -> [B, S, d]
      if (this.format.float !== 'float32') x = g.cast(x, 'float32');
    } else {
      const { q, names, packed } = table;
      // GatherBlockQuantized wants the packed rows as [V, d * bits / 8]: the same bytes, a 2-D shape.
      const rows = g.weight(`${names.packed}.rows`, 'uint8', [q.rows, (q.blocks * q.block * q.bits) / 8], packed);
      const attrs = { bits: q.bits, block_size: q.block, gather_axis: 0, quantize_axis: 1 };
      x = g.op(
        'GatherBlockQuantized',
        [rows, IN.inputIds, names.scales, names.zeroPoints],
        attrs,
        undefined,
        'com.microsoft',
      );
      if (q.blocks * q.block !== d) x = g.slice(x, [0], [d], [2]); // the last block's padding
    }
    if (this.features.vlm) {
      const task = g.gather(IN.taskEmbeddings, IN.taskIndex);
      const isTask = g.unsqueeze(g.op('Greater', [IN.taskIndex, g.ints([0])]), [2]);
      x = g.op('Where', [isTask, task, x]);
    }
    if (positions) x = g.add(x, g.gather(positions, IN.positionIds));
    return g.reshape(x, [-1, this.c.hiddenSize]);
  }

  layerNorm(x: string, weight: string, bias: string, eps = this.c.normEps): string {
    return this.g.op('LayerNormalization', [x, weight, bias], { axis: -1, epsilon: { float: eps } });
  }

  /** x / sqrt(mean(x^2) + eps) * w, in the form onnxruntime fuses into one SimplifiedLayerNormalization. */
  rmsNorm(x: string, weight: string): string {
    const g = this.g;
    const meanSquare = g.op('ReduceMean', [g.op('Pow', [x, g.scalar(2)])], { axes: [-1], keepdims: 1 });
    const rms = g.op('Sqrt', [g.add(meanSquare, g.scalar(this.c.normEps))]);
    return g.mul(g.op('Div', [x, rms]), weight);
  }

  /** RMSNorm of each head vector of x [N, heads*hd] (Qwen3's q_norm / k_norm). */
  perHeadRmsNorm(x: string, heads: number, weight: string): string {
    const hd = this.c.headDim;
    return this.g.reshape(this.rmsNorm(this.g.reshape(x, [-1, heads, hd]), weight), [-1, heads * hd]);
  }

  /**
   * GPT-2's "gelu_new", the tanh approximation: onnxruntime's FastGelu computes exactly that, as
   * one kernel (CPU, CUDA and WebGPU have it), where the formula would be eight.
   */
  geluTanh(x: string): string {
    return this.g.op('FastGelu', [x], {}, undefined, 'com.microsoft');
  }

  silu(x: string): string {
    return this.g.mul(x, this.g.op('Sigmoid', [x]));
  }

  /** The config's MLP activation (Llama family). */
  activation(x: string): string {
    const g = this.g;
    switch (this.c.activation ?? 'silu') {
      case 'silu':
        return this.silu(x);
      case 'gelu_tanh':
        return this.geluTanh(x);
      case 'gelu': // exact: x * (1 + erf(x / sqrt 2)) / 2
        return g.mul(g.mul(x, g.scalar(0.5)), g.add(g.op('Erf', [g.mul(x, g.scalar(Math.SQRT1_2))]), g.scalar(1)));
    }
  }

  /** Gemma's RMSNorm weight: (1 + w), in float32 as transformers computes it. */
  onePlus(name: string): string {
    const onePlus = () =>
      floatBytes(
        this.float(name).data.map((x) => Math.fround(1 + x)),
        'float32',
      );
    return this.g.weight(`${name}+1`, 'float32', this.stored(name).dims, onePlus);
  }

  /**
   * x @ W (+ b) for the block projection `module` of layer `l`, plus the LoRA delta of each row's
   * LoRA slot. `weight` and `bias` are checkpoint names.
   */
  linear(l: number, module: string, x: string, weight: string, layout: MatrixLayout, bias?: string): string {
    const g = this.g;
    let y = this.times(x, this.matrix(weight, layout));
    if (bias) y = g.add(y, this.w(bias));
    if (!this.features.lora) return y;
    const io = loraInputs(l, module);
    const delta = g.matmul(g.matmul(this.gatherRows(x, IN.loraGather), io.a), io.b);
    return g.add(y, this.scatterRows(delta, IN.loraScatter));
  }

  /**
   * The Hugging Face projection `module` of layer `l` ([out, in] weight, `<module>.weight`), with its
   * bias when the checkpoint has one (Qwen2's q/k/v, Llama's attention_bias/mlp_bias), plus LoRA.
   */
  hfProjection(l: number, module: string, x: string): string {
    const name = (n: string) => blockWeight(this.c, l, `${module}.${n}`);
    return this.linear(l, module, x, name('weight'), 'out_in', this.has(name('bias')) ? name('bias') : undefined);
  }

  /** Rotary position embedding of x [N, heads*hd], in the checkpoint's pairing layout. */
  rope(x: string, heads: number): string {
    const g = this.g;
    const { headDim: hd } = this.c;
    const { cos, sin } = this.ropeTables ?? (this.ropeTables = this.ropeTable());
    const rotate = (a: string, b: string, cosT: string, sinT: string) => [
      g.sub(g.mul(a, cosT), g.mul(b, sinT)),
      g.add(g.mul(b, cosT), g.mul(a, sinT)),
    ];
    if (this.c.ropeLayout === 'interleaved') {
      const x4 = g.reshape(x, [-1, heads, hd / 2, 2]);
      const even = g.slice(x4, [0], [1], [3]);
      const odd = g.slice(x4, [1], [2], [3]);
      const [c4, s4] = [g.unsqueeze(cos, [3]), g.unsqueeze(sin, [3])];
      return g.reshape(g.concat(rotate(even, odd, c4, s4), 3), [-1, heads * hd]);
    }
    const x3 = g.reshape(x, [-1, heads, hd]);
    const first = g.slice(x3, [0], [hd / 2], [2]);
    const second = g.slice(x3, [hd / 2], [hd], [2]);
    return g.reshape(g.concat(rotate(first, second, cos, sin), 2), [-1, heads * hd]);
  }

  /** cos/sin [N, 1, hd/2] for the batch's positions, from tables computed like PyTorch in float32. */
  private ropeTable(): { cos: string; sin: string } {
    const { headDim: hd, maxPositions } = this.c;
    const half = hd / 2;
    const cos = new Float32Array(maxPositions * half);
    const sin = new Float32Array(maxPositions * half);
    const frequencies = ropeFrequencies(this.c);
    for (let j = 0; j < half; j++) {
      const inv = frequencies[j];
      for (let p = 0; p < maxPositions; p++) {
        const angle = Math.fround(p * inv);
        cos[p * half + j] = Math.cos(angle);
        sin[p * half + j] = Math.sin(angle);
      }
    }
    const g = this.g;
    const positions = g.reshape(IN.positionIds, [-1]);
    const pick = (name: string, data: Float32Array) =>
      g.unsqueeze(g.gather(g.tensor(name, { dims: [maxPositions, half], data }), positions), [1]);
    return { cos: pick('rope.cos', cos), sin: pick('rope.sin', sin) };
  }

  /**
   * Causal attention of the new tokens over the cached past and each other. q [N, H*hd], k and v
   * [N, Hkv*hd]; k and v also become the outputs the runtime writes into its cache.
   */
  attention(l: number, q: string, k: string, v: string): string {
    const g = this.g;
    const { numHeads: h, numKvHeads: kvh, headDim: hd } = this.c;
    g.output(k, newKey(l), 'float32', ['N', kvh * hd]);
    g.output(v, newValue(l), 'float32', ['N', kvh * hd]);
    const split = (x: string, heads: number, perm: number[]) =>
      g.transpose(g.op('Reshape', [x, g.concat([this.batchShape, g.ints([heads, hd])], 0)]), perm);
    const qScaled = g.mul(q, g.scalar(this.c.attentionScale ?? 1 / Math.sqrt(hd)));
    const qGrouped = g.reshape(split(qScaled, h, [0, 2, 1, 3]), [0, kvh, -1, hd]); // [B, Hkv, G*S, hd]
    const kT = split(k, kvh, [0, 2, 3, 1]); // [B, Hkv, hd, S]
    const vT = split(v, kvh, [0, 2, 1, 3]); // [B, Hkv, S, hd]
    let scores = g.concat([g.matmul(qGrouped, pastKey(l)), g.matmul(qGrouped, kT)], 3);
    if (this.c.attentionSoftcap) scores = this.softcap(scores, this.c.attentionSoftcap);
    const window = this.c.slidingWindow;
    const bias = window?.layers.includes(l) ? this.windowBias(window.size) : this.bias;
    const probs = g.op('Softmax', [g.add(scores, bias)], { axis: 3 });
    const [pPast, pNew] = g.opN('Split', [probs, this.splitSizes], 2, { axis: 3 });
    const out = g.add(g.matmul(pPast, pastValue(l)), g.matmul(pNew, vT)); // [B, Hkv, G*S, hd]
    const heads = g.transpose(g.reshape(out, [0, h, -1, hd]), [0, 2, 1, 3]); // [B, S, H, hd]
    return g.reshape(heads, [-1, h * hd]);
  }

  /** The VLM residual adapter after block l: h + up(ReLU(down(LayerNorm(h)))) for rows with one. */
  vlm(l: number, h: string): string {
    if (!this.features.vlm) return h;
    const g = this.g;
    const d = this.c.hiddenSize;
    const io = vlmInputs(l);
    const ones = this.constantRow('ones', d, 1);
    const zeros = this.constantRow('zeros', d, 0);
    // The adapter's LayerNorm scale and shift are folded into its down projection by the bank.
    const normed = this.layerNorm(h, ones, zeros, VLM_LAYER_NORM_EPS);
    const z = g.op('Relu', [g.add(g.matmul(this.gatherRows(normed, IN.vlmGather), io.down), io.downB)]);
    const y = g.add(g.matmul(z, io.up), io.upB);
    return g.add(h, this.scatterRows(y, IN.vlmScatter));
  }

  /**
   * Logits of the scored tokens (each row's last): the base vocabulary, then the row's task tokens. A float32
   * head is [d, V] so that batch-1 decoding gets onnxruntime's GEMV kernel: with the PyTorch
   * [V, d] layout (a transposed Gemm) reading its 150 MB took GPT-2 small 4.6 ms instead of 2.5.
   */
  head(h: string, norm: (x: string) => string, table: EmbeddingTable): void {
    const g = this.g;
    const last = norm(g.gather(h, IN.lastIndex)); // [L, d]
    const base = this.times(
      last,
      table.kind === 'float' ? { kind: 'float', name: table.tableT, layout: 'in_out' } : table,
    );
    let logits = base;
    if (this.features.vlm) {
      const task = this.scatterRows(g.matmul(g.gather(last, IN.headGather), IN.taskHead), IN.headScatter);
      logits = g.concat([base, task], 1);
    }
    if (this.c.finalSoftcap) logits = this.softcap(logits, this.c.finalSoftcap);
    g.output(logits, LOGITS, 'float32', ['L', 'V']);
  }

  encode(): BuiltGraph {
    return this.g.encode(`${this.c.architecture}-decoder`);
  }

  /** Rows of x [N, k] grouped by adapter slot: [U, R, k]. Shared by projections with one input. */
  private gatherRows(x: string, index: string): string {
    const key = `${x}|${index}`;
    let out = this.gathered.get(key);
    if (!out) this.gathered.set(key, (out = this.g.gather(x, index)));
    return out;
  }

  /** The inverse of gatherRows: [U, R, k] back to [N, k], zeros for rows without an adapter. */
  private scatterRows(y: string, index: string): string {
    const g = this.g;
    const flat = g.op('Flatten', [y], { axis: 2 });
    return g.gather(g.op('Pad', [flat, g.ints([0, 0, 1, 0])]), index);
  }

  private constantRow(name: string, d: number, value: number): string {
    const key = `${name}_${d}`;
    if (!this.constants.has(key))
      this.constants.set(key, this.g.tensor(key, { dims: [d], data: new Float32Array(d).fill(value) }));
    return this.constants.get(key)!;
  }
}

/** The name of a block weight of layer l. */
export const blockWeight = (c: ModelConfig, l: number, name: string) => `${layerPrefix(c, l)}${name}`;

/**
 * RoPE inverse frequencies in float32, as transformers computes them (modeling_rope_utils.py):
 * theta^(-2j/hd), then rescaled by rope_scaling "linear" (divided by the factor) or "llama3"
 * (long wavelengths divided by the factor, short ones kept, smoothed in between).
 */
export function ropeFrequencies(c: ModelConfig): Float32Array {
  const { headDim: hd, ropeTheta = 10000, ropeScaling: scaling } = c;
  const out = new Float32Array(hd / 2);
  for (let j = 0; j < hd / 2; j++) {
    const inv = Math.fround(1 / Math.fround(ropeTheta ** Math.fround((2 * j) / hd)));
    if (!scaling) out[j] = inv;
    else if (scaling.type === 'linear') out[j] = inv / scaling.factor;
    else {
      const { factor, lowFreqFactor: low, highFreqFactor: high, originalMaxPositions: old } = scaling;
      const wavelen = (2 * Math.PI) / inv;
      if (wavelen < old / high) out[j] = inv;
      else if (wavelen > old / low) out[j] = inv / factor;
      else {
        const smooth = (old / wavelen - low) / (high - low);
        out[j] = (1 - smooth) * (inv / factor) + smooth * inv;
      }
    }
  }
  return out;
}
