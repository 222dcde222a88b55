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
/** onnxruntime's contrib-op domain (the fused kernels: MatMulNBits, RotaryEmbedding, ...). */
const MS = 'com.microsoft';

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
/** What a block does to each head of its queries or keys before attention (rotary, per-head norms). */
export type PerHead = (heads: string, of: 'q' | 'k') => string;

/** A norm's weights (graph names): RMSNorm without a bias, LayerNorm with one. */
export interface Norm {
  weight: string;
  bias?: string;
}

export type EmbeddingTable = { kind: 'float'; tableT: string } | Extract<Matrix, { kind: 'quantized' }>;

export class DecoderGraph {
  readonly g = new GraphBuilder();
  private readonly gathered = new Map<string, string>();
  private readonly halved = new Map<string, string>();
  private readonly constants = new Map<string, string>();
  /** Shape [B, S] of the batch; the attention bias [B, S, P + S], and the same for grouped-query heads. */
  private readonly batchShape: string;
  private readonly causalBias: string;
  private readonly bias: string;
  private readonly splitSizes: string;
  private ropeTables?: { cos: string; sin: string };
  private readonly windowBiases = new Map<number, string>();
  private readonly batchShapes = new Map<string, string>();

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
    g.input(IN.pastLength, 'int64', ['B']);
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
    const pastLen = g.op('Shape', [pastKey(0)], { start: 3 });
    const newLen = g.op('Shape', [IN.inputIds], { start: 1 });
    this.splitSizes = g.concat([pastLen, newLen], 0);
    this.causalBias = this.causalMask(pastLen, newLen);
    // Queries of the G heads that share a key/value head are stacked as G*S rows: tile the bias.
    this.bias = this.grouped(this.causalBias);
  }

  /**
   * The attention bias [B, S, P + S], made in the graph from each row's past length (so the runner
   * feeds B numbers, not a tensor the size of the context): cache column t is seen while t < the
   * row's past length (later columns are stale or unwritten), new token j by new tokens j' >= j.
   * A row's padding (after its real tokens) sees its real tokens: finite, and its outputs unread.
   */
  private causalMask(pastLen: string, newLen: string): string {
    const g = this.g;
    const range = (length: string) => g.op('Range', [g.intScalar(0), g.op('Squeeze', [length]), g.intScalar(1)]);
    const masked = (visible: string) => g.op('Where', [visible, g.scalar(0), g.scalar(MASKED)]);
    const past = g.op('Less', [g.unsqueeze(range(pastLen), [0, 1]), g.unsqueeze(IN.pastLength, [1, 2])]); // [B, 1, P]
    const newer = range(newLen);
    const causal = g.op('LessOrEqual', [g.unsqueeze(newer, [0]), g.unsqueeze(newer, [1])]); // [S (query), S (key)]
    const expand = (x: string, last: string) => g.op('Expand', [x, g.concat([this.batchShape, last], 0)]);
    return g.concat([expand(masked(past), pastLen), expand(masked(causal), newLen)], 2);
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
    const cached = g.op('Range', [g.intScalar(0), capacity, g.intScalar(1)]); // [P]
    const behind = [g.sub(queries, cached), g.sub(queries, g.unsqueeze(IN.positionIds, [1]))];
    const distance = g.concat(behind, 2); // [B, S, P + S]: how far each key is behind the query
    const far = g.op('GreaterOrEqual', [distance, g.ints([size])]);
    out = this.grouped(g.op('Where', [far, g.scalar(MASKED), this.causalBias]));
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

  /** [out, in] weights stacked by rows, as float32. */
  private stacked(parts: readonly string[]): Tensor {
    if (parts.length === 1) return this.float(parts[0]);
    const tensors = parts.map((p) => this.float(p));
    const data = new Float32Array(total(tensors.map((t) => t.data.length)));
    tensors.reduce((at, t) => (data.set(t.data, at), at + t.data.length), 0);
    return { dims: [total(tensors.map((t) => t.dims[0])), tensors[0].dims[1]], data };
  }

  /** Whether the checkpoint has a weight (optional biases). */
  has(name: string): boolean {
    return this.weights.has(name);
  }

  /**
   * A projection's weight matrix, in the graph's weight format. With several `parts` ([out, in]
   * matrices of one input, e.g. q, k and v), their rows are stacked into one matrix named `name`,
   * so that one product computes them all. Quantization is per row, so the stacked matrix holds
   * exactly the bytes of each part quantized alone.
   */
  private matrix(name: string, layout: MatrixLayout, parts: readonly string[] = [name]): Matrix {
    const stored = parts.map((p) => this.stored(p));
    if (parts.length > 1 && layout !== 'out_in') throw new Error('only [out, in] matrices are stacked');
    const dims = [total(stored.map((t) => t.dims[0])), stored[0].dims[1]];
    const float = this.format.float;
    if (this.format.quantize === 'none') {
      const bytes = () => concatBytes(stored.map((t) => bytesAs(t, float)));
      return { kind: 'float', name: this.g.weight(name, float, dims, bytes), layout };
    }
    const [rows, cols] = layout === 'in_out' ? [dims[1], dims[0]] : dims;
    const q = quantizedShape(rows, cols, bitsOf(this.format.quantize), this.format.block);
    // Quantized once, when the first of its three weights is asked for.
    let made: QuantizedMatrix | undefined;
    const quantized = () => {
      if (made) return made;
      const t = layout === 'in_out' ? transpose2d(this.float(name)) : this.stacked(parts);
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
    return g.op('MatMulNBits', [x, names.packed, names.scales, names.zeroPoints], attrs, undefined, MS);
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
      x = g.op('GatherBlockQuantized', [rows, IN.inputIds, names.scales, names.zeroPoints], attrs, undefined, MS);
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

  /** RMSNorm, x / sqrt(mean(x^2) + eps) * w over the last axis: one SimplifiedLayerNormalization (float32 inside). */
  rmsNorm(x: string, weight: string): string {
    return this.g.op('SimplifiedLayerNormalization', [x, weight], this.normAttributes());
  }

  /**
   * The residual add and the next norm as one node: `sum` is h + delta (the new residual stream),
   * `normed` its RMSNorm with `norm.weight` (SkipSimplifiedLayerNormalization), or its LayerNorm
   * when the norm has a bias (SkipLayerNormalization, GPT-2).
   */
  addNorm(h: string, delta: string, norm: Norm): { sum: string; normed: string } {
    const [type, inputs] = norm.bias
      ? ['SkipLayerNormalization', [delta, h, norm.weight, norm.bias]]
      : ['SkipSimplifiedLayerNormalization', [delta, h, norm.weight]];
    const attrs = { epsilon: { float: this.c.normEps } };
    const [normed, , , sum] = this.g.opN(type, inputs, 4, attrs, MS, [1, 2]);
    return { sum, normed };
  }

  /** A norm's output alone (the first block's input, or after a VLM adapter). */
  norm(x: string, norm: Norm): string {
    return norm.bias ? this.layerNorm(x, norm.weight, norm.bias) : this.rmsNorm(x, norm.weight);
  }

  private normAttributes() {
    return { axis: -1, epsilon: { float: this.c.normEps }, stash_type: 1 };
  }

  /**
   * GPT-2's "gelu_new", the tanh approximation: onnxruntime's FastGelu computes exactly that, as
   * one kernel (CPU, CUDA and WebGPU have it), where the formula would be eight.
   */
  geluTanh(x: string): string {
    return this.g.op('FastGelu', [x], {}, undefined, MS);
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
    return this.withLora(l, module, x, y);
  }

  /** y plus the LoRA delta of `module` for the rows whose LoRA slot adapts it. */
  private withLora(l: number, module: string, x: string, y: string): string {
    if (!this.features.lora) return y;
    const g = this.g;
    const io = loraInputs(l, module);
    const delta = g.matmul(g.matmul(this.gatherRows(x, IN.loraGather), io.a), io.b);
    return g.add(y, this.scatterRows(delta, IN.loraScatter));
  }

  /**
   * Several Hugging Face projections of one input (q/k/v, gate/up) as one product over their
   * stacked weights, then split. The biases (Qwen2's q/k/v, attention_bias) are stacked too, zeros
   * for a module without one. LoRA stays per module: each module's delta (its own A and B from the
   * bank) is added to its slice after the split, so the stacked weights are the checkpoint's and
   * an adapter of any subset of the modules needs nothing new from the bank. (A block-diagonal
   * stacking of the A/B matrices would save two small products per module, but the bank would have
   * to rebuild its tensors for every mix of modules an adapter targets.)
   */
  fusedHfProjections(l: number, modules: readonly string[], x: string): string[] {
    const g = this.g;
    const name = (m: string, n: string) => blockWeight(this.c, l, `${m}.${n}`);
    if (modules.length === 1) return [this.hfProjection(l, modules[0], x)];
    const weights = modules.map((m) => name(m, 'weight'));
    // A name of its own: the stacked bytes differ from any checkpoint tensor's (weights/cache.ts keys by name).
    const stackedName = `${blockWeight(this.c, l, '')}[${modules.join('+')}].weight`;
    let y = this.times(x, this.matrix(stackedName, 'out_in', weights));
    const sizes = weights.map((w) => this.stored(w).dims[0]);
    if (modules.some((m) => this.has(name(m, 'bias')))) {
      const bias = () => {
        const data = new Float32Array(total(sizes));
        modules.reduce((at, m, i) => {
          if (this.has(name(m, 'bias'))) data.set(this.float(name(m, 'bias')).data, at);
          return at + sizes[i];
        }, 0);
        return floatBytes(data, 'float32');
      };
      y = g.add(y, g.weight(stackedName.replace(/\.weight$/, '.bias'), 'float32', [total(sizes)], bias));
    }
    const slices = g.opN('Split', [y, g.ints(sizes)], modules.length, { axis: -1 });
    return slices.map((slice, i) => this.withLora(l, modules[i], x, slice));
  }

  /**
   * The Hugging Face projection `module` of layer `l` ([out, in] weight, `<module>.weight`), with its
   * bias when the checkpoint has one (Qwen2's q/k/v, Llama's attention_bias/mlp_bias), plus LoRA.
   */
  hfProjection(l: number, module: string, x: string): string {
    const name = (n: string) => blockWeight(this.c, l, `${module}.${n}`);
    return this.linear(l, module, x, name('weight'), 'out_in', this.has(name('bias')) ? name('bias') : undefined);
  }

  /**
   * Rotary position embedding of head-major x [B, heads, S, hd] at the tokens' position_ids: one
   * RotaryEmbedding node (its `interleaved` flag is llama2.c's pairing of dims (2i, 2i+1); off,
   * Hugging Face's rotate-half pairing of i and i + hd/2).
   */
  rope(x: string): string {
    const { cos, sin } = (this.ropeTables ??= this.ropeTable());
    const interleaved = this.c.ropeLayout === 'interleaved' ? 1 : 0;
    return this.g.op('RotaryEmbedding', [x, IN.positionIds, cos, sin], { interleaved }, undefined, MS);
  }

  /** Shape [B, S, ...dims]: token-major [N, ...] activations as the per-sequence ops read them. */
  private batchShaped(dims: number[]): string {
    const key = dims.join();
    let out = this.batchShapes.get(key);
    if (!out) this.batchShapes.set(key, (out = this.g.concat([this.batchShape, this.g.ints(dims)], 0)));
    return out;
  }

  /** The cos/sin caches [maxPositions, hd/2], computed like PyTorch in float32 (see ropeFrequencies). */
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
    return {
      cos: g.tensor('rope.cos', { dims: [maxPositions, half], data: cos }),
      sin: g.tensor('rope.sin', { dims: [maxPositions, half], data: sin }),
    };
  }

  /**
   * Causal attention of the new tokens over the cached past and each other. q [N, H*hd], k and v
   * [N, Hkv*hd] as projected; `perHead` (rotary, per-head norms) maps the head-major [B, heads, S, hd]
   * queries and keys. The head-major keys and values are also the outputs the runtime writes into
   * its cache.
   */
  attention(l: number, q: string, k: string, v: string, perHead: PerHead = (x) => x): string {
    const g = this.g;
    const { numHeads: h, numKvHeads: kvh, headDim: hd } = this.c;
    const headMajor = (x: string, heads: number) =>
      g.transpose(g.op('Reshape', [x, this.batchShaped([heads, hd])]), [0, 2, 1, 3]);
    const keys = perHead(headMajor(k, kvh), 'k'); // [B, Hkv, S, hd]
    const values = headMajor(v, kvh); // [B, Hkv, S, hd]
    g.output(keys, newKey(l), 'float32', ['B', kvh, 'S', hd]);
    g.output(values, newValue(l), 'float32', ['B', kvh, 'S', hd]);
    const qGrouped = g.reshape(perHead(headMajor(q, h), 'q'), [0, kvh, -1, hd]); // [B, Hkv, G*S, hd]
    // q @ k scaled in the product (FusedMatMul's alpha, and transB for the new keys).
    const alpha = { float: this.c.attentionScale ?? 1 / Math.sqrt(hd) };
    const scaled = (b: string, transB: number) => g.op('FusedMatMul', [qGrouped, b], { alpha, transB }, undefined, MS);
    let scores = g.concat([scaled(pastKey(l), 0), scaled(keys, 1)], 3);
    if (this.c.attentionSoftcap) scores = this.softcap(scores, this.c.attentionSoftcap);
    const window = this.c.slidingWindow;
    const bias = window?.layers.includes(l) ? this.windowBias(window.size) : this.bias;
    const probs = g.op('Softmax', [g.add(scores, bias)], { axis: 3 });
    const [pPast, pNew] = g.opN('Split', [probs, this.splitSizes], 2, { axis: 3 });
    const out = g.add(g.matmul(pPast, pastValue(l)), g.matmul(pNew, values)); // [B, Hkv, G*S, hd]
    const heads = g.transpose(g.reshape(out, [0, h, -1, hd]), [0, 2, 1, 3]); // [B, S, H, hd]
    return g.reshape(heads, [-1, h * hd]);
  }

  /**
   * The end of block l: the residual stream h + delta (then the VLM adapter, for rows with one),
   * and, when another block follows, its norm `nextNorm`: one node with the add (see addNorm) when
   * no VLM adapter sits between the add and the norm.
   */
  endBlock(l: number, h: string, delta: string, nextNorm?: Norm): { h: string; normed?: string } {
    if (nextNorm && !this.features.vlm) {
      const { sum, normed } = this.addNorm(h, delta, nextNorm);
      return { h: sum, normed };
    }
    const out = this.vlm(l, this.g.add(h, delta));
    return { h: out, normed: nextNorm && this.norm(out, nextNorm) };
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

const total = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);

function concatBytes(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  parts.reduce((at, p) => (out.set(p, at), at + p.byteLength), 0);
  return out;
}

/** The name of a block weight of layer l. */
const blockWeight = (c: ModelConfig, l: number, name: string) => `${layerPrefix(c, l)}${name}`;

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
