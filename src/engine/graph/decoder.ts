import type { ModelConfig } from '../model/config.ts';
import { layerPrefix } from '../model/layout.ts';
import type { WeightSource } from '../weights/stored.ts';
import { FLOAT32, type WeightFormat } from '../weights/quantize.ts';
import { CONTRIB, GraphBuilder, type BuiltGraph } from './onnx.ts';
import {
  CACHE_IN,
  IN,
  LOGITS,
  MASKED,
  NEW_KV,
  pastKey,
  pastValue,
  presentKey,
  presentValue,
  type KvPlacement,
} from './io.ts';
import { ALL_FEATURES, GraphAdapters, type GraphFeatures } from './adapters.ts';
import { ropeTables } from './rope.ts';
import { WeightMatrices, type EmbeddingTable, type MatrixLayout } from './weight-matrices.ts';

/**
 * The layers every decoder-only architecture shares, on top of the I/O contract in io.ts:
 * attention over the KV cache, host or device (its masks made in the graph), norms, activations, rotary
 * positions, LoRA-adapted projections and the output head. The weights are weight-matrices.ts's,
 * the adapters adapters.ts's; each architecture's module (archs/) wires a block from these, and
 * graph/build.ts the blocks into a decoder. Activations are token-major [N, d].
 */

/** What a block does to each head of its queries or keys before attention (rotary, per-head norms). */
export type PerHead = (heads: string, of: 'q' | 'k') => string;

/** A norm's weights (graph names): RMSNorm without a bias, LayerNorm with one. */
export interface Norm {
  weight: string;
  bias?: string;
}

export class DecoderGraph {
  readonly graph = new GraphBuilder();
  readonly weights: WeightMatrices;
  readonly adapters: GraphAdapters;
  /** Shape [B, S] of the batch; the attention bias [B, S, P + S], and the same for grouped-query heads. */
  private readonly batchShape: string;
  private readonly causalBias: string;
  private readonly bias: string;
  private readonly splitSizes: string;
  private ropeCache?: { cos: string; sin: string };
  private readonly windowBiases = new Map<number, string>();
  private readonly batchShapes = new Map<string, string>();
  /** Each layer's new keys and values, in order: one output at the end (io.ts NEW_KV). */
  private readonly newKv: string[] = [];

  constructor(
    readonly config: ModelConfig,
    weights: WeightSource,
    /** Which adapter kinds the graph serves; an unused kind costs its ops on every step. */
    features: GraphFeatures = ALL_FEATURES,
    format: WeightFormat = FLOAT32,
    /** Where the KV cache lives (io.ts): the run's rows fed from the host, or every row kept on the device. */
    readonly kv: KvPlacement = 'host',
  ) {
    const g = this.graph;
    this.weights = new WeightMatrices(g, weights, format);
    this.adapters = new GraphAdapters(g, config, features);
    const { numLayers, numKvHeads: kvh, headDim: hd } = config;
    g.input(IN.inputIds, 'int64', ['B', 'S']);
    g.input(IN.positionIds, 'int64', ['B', 'S']);
    g.input(IN.pastLength, 'int64', ['B']);
    g.input(IN.lastIndex, 'int64', ['L']);
    this.adapters.declareInputs();
    const cacheRows = kv === 'device' ? 'CacheRows' : 'B';
    if (kv === 'device') {
      g.input(CACHE_IN.rows, 'int64', ['B']);
      g.input(CACHE_IN.index, 'int64', ['B', kvh, 'S', 3]);
    }
    for (let l = 0; l < numLayers; l++) {
      g.input(pastKey(l), 'float32', [cacheRows, kvh, 'P', hd]);
      g.input(pastValue(l), 'float32', [cacheRows, kvh, 'P', hd]);
      this.adapters.declareLayerInputs(l);
    }
    this.batchShape = g.op('Shape', [IN.inputIds]);
    const pastLen = g.op('Shape', [pastKey(0)], { start: 2, end: 3 });
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
    const g = this.graph;
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
    const g = this.graph;
    const groups = this.config.numHeads / this.config.numKvHeads;
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
    const g = this.graph;
    const queries = g.unsqueeze(IN.positionIds, [2]); // [B, S, 1]
    const capacity = g.op('Squeeze', [g.op('Shape', [pastKey(0)], { start: 2, end: 3 }), g.ints([0])]);
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
    const g = this.graph;
    return g.mul(g.op('Tanh', [g.mul(x, g.scalar(1 / cap))]), g.scalar(cap));
  }

  /** Token embeddings [N, d] (plus learned `positions`); a row's task tokens take their embedding from its VLM slot. */
  embed(table: EmbeddingTable, positions?: string): string {
    const g = this.graph;
    let x = this.adapters.taskEmbeddings(this.weights.lookup(table, IN.inputIds, this.config.hiddenSize));
    if (positions) x = g.add(x, g.gather(positions, IN.positionIds));
    return g.reshape(x, [-1, this.config.hiddenSize]);
  }

  private layerNorm(x: string, weight: string, bias: string): string {
    return this.graph.op('LayerNormalization', [x, weight, bias], {
      axis: -1,
      epsilon: { float: this.config.normEps },
    });
  }

  /** RMSNorm, x / sqrt(mean(x^2) + eps) * w over the last axis: one SimplifiedLayerNormalization (float32 inside). */
  rmsNorm(x: string, weight: string): string {
    return this.graph.op('SimplifiedLayerNormalization', [x, weight], this.normAttributes());
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
    const attrs = { epsilon: { float: this.config.normEps } };
    const [normed, , , sum] = this.graph.opN(type, inputs, 4, attrs, CONTRIB, [1, 2]);
    return { sum, normed };
  }

  /** A norm's output alone (the first block's input, or after a VLM adapter). */
  norm(x: string, norm: Norm): string {
    return norm.bias ? this.layerNorm(x, norm.weight, norm.bias) : this.rmsNorm(x, norm.weight);
  }

  private normAttributes() {
    return { axis: -1, epsilon: { float: this.config.normEps }, stash_type: 1 };
  }

  /**
   * GPT-2's "gelu_new", the tanh approximation: onnxruntime's FastGelu computes exactly that, as
   * one kernel (CPU, CUDA and WebGPU have it), where the formula would be eight.
   */
  geluTanh(x: string): string {
    return this.graph.op('FastGelu', [x], {}, undefined, CONTRIB);
  }

  silu(x: string): string {
    return this.graph.mul(x, this.graph.op('Sigmoid', [x]));
  }

  /** The config's MLP activation (Llama family). */
  activation(x: string): string {
    const g = this.graph;
    switch (this.config.activation ?? 'silu') {
      case 'silu':
        return this.silu(x);
      case 'gelu_tanh':
        return this.geluTanh(x);
      case 'gelu': // exact: x * (1 + erf(x / sqrt 2)) / 2
        return g.mul(g.mul(x, g.scalar(0.5)), g.add(g.op('Erf', [g.mul(x, g.scalar(Math.SQRT1_2))]), g.scalar(1)));
    }
  }

  /**
   * x @ W (+ b) for the block projection `module` of layer `l`, plus the LoRA delta of each row's
   * LoRA slot. `weight` and `bias` are checkpoint names.
   */
  linear(l: number, module: string, x: string, weight: string, layout: MatrixLayout, bias?: string): string {
    let y = this.weights.times(x, this.weights.matrix(weight, layout));
    if (bias) y = this.graph.add(y, this.weights.float32(bias));
    return this.adapters.lora(l, module, x, y);
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
  fusedProjections(l: number, modules: readonly string[], x: string): string[] {
    if (modules.length === 1) return [this.projection(l, modules[0], x)];
    const { y, sizes } = this.stackedProduct(l, modules, x);
    const slices = this.graph.opN('Split', [y, this.graph.ints(sizes)], modules.length, { axis: -1 });
    return slices.map((slice, i) => this.adapters.lora(l, modules[i], x, slice));
  }

  /** x times the stacked weights of `modules` (with their stacked biases): [N, sum of sizes], no LoRA. */
  private stackedProduct(l: number, modules: readonly string[], x: string): { y: string; sizes: number[] } {
    const name = (m: string, n: string) => this.blockWeight(l, `${m}.${n}`);
    const weights = modules.map((m) => name(m, 'weight'));
    // A name of its own: the stacked bytes differ from any checkpoint tensor's (weights/cache.ts keys by name).
    const stackedName = `${this.blockWeight(l, '')}[${modules.join('+')}].weight`;
    let y = this.weights.times(x, this.weights.matrix(stackedName, 'out_in', weights));
    const sizes = weights.map((w) => this.weights.rows(w));
    const biases = modules.map((m) => name(m, 'bias'));
    if (biases.some((b) => this.weights.has(b))) {
      y = this.graph.add(y, this.weights.stackedBias(stackedName.replace(/\.weight$/, '.bias'), biases, sizes));
    }
    return { y, sizes };
  }

  /**
   * Attention over the Hugging Face q/k/v projections of x (`self_attn.{q,k,v}_proj`), as one product
   * over their stacked weights. LoRA adds each module's delta to its token-major slice; without LoRA
   * in the graph the product goes head-major whole (attentionStacked), four nodes fewer a layer.
   */
  qkvAttention(l: number, x: string, perHead?: PerHead): string {
    const modules = ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj'];
    if (this.adapters.features.lora) {
      const [q, k, v] = this.fusedProjections(l, modules, x);
      return this.attention(l, q, k, v, perHead);
    }
    return this.attentionStacked(l, this.stackedProduct(l, modules, x).y, perHead);
  }

  /**
   * The Hugging Face projection `module` of layer `l` ([out, in] weight, `<module>.weight`), with its
   * bias when the checkpoint has one (Qwen2's q/k/v, Llama's attention_bias/mlp_bias), plus LoRA.
   */
  projection(l: number, module: string, x: string): string {
    const name = (n: string) => this.blockWeight(l, `${module}.${n}`);
    const bias = this.weights.has(name('bias')) ? name('bias') : undefined;
    return this.linear(l, module, x, name('weight'), 'out_in', bias);
  }

  /** The name of a weight of block l, e.g. "model.layers.3.self_attn.q_proj.weight". */
  blockWeight(l: number, name: string): string {
    return `${layerPrefix(this.config, l)}${name}`;
  }

  /**
   * Rotary position embedding of head-major x [B, heads, S, hd] at the tokens' position_ids: one
   * RotaryEmbedding node (its `interleaved` flag is llama2.c's pairing of dims (2i, 2i+1); off,
   * Hugging Face's rotate-half pairing of i and i + hd/2).
   */
  rope(x: string): string {
    const { cos, sin } = (this.ropeCache ??= ropeTables(this.graph, this.config));
    const interleaved = this.config.ropeLayout === 'interleaved' ? 1 : 0;
    return this.graph.op('RotaryEmbedding', [x, IN.positionIds, cos, sin], { interleaved }, undefined, CONTRIB);
  }

  /** Shape [B, S, ...dims]: token-major [N, ...] activations as the per-sequence ops read them. */
  private batchShaped(dims: number[]): string {
    const key = dims.join();
    let out = this.batchShapes.get(key);
    if (!out) this.batchShapes.set(key, (out = this.graph.concat([this.batchShape, this.graph.ints(dims)], 0)));
    return out;
  }

  /**
   * Causal attention of the new tokens over the cached past and each other. q [N, H*hd], k and v
   * [N, Hkv*hd] as projected; `perHead` (rotary, per-head norms) maps the head-major [B, heads, S, hd]
   * queries and keys. The head-major keys and values are also the outputs the runtime writes into
   * its cache.
   */
  attention(l: number, q: string, k: string, v: string, perHead?: PerHead): string {
    const { numHeads: h, numKvHeads: kvh } = this.config;
    return this.attendHeadMajor(l, this.headMajor(q, h), this.headMajor(k, kvh), this.headMajor(v, kvh), perHead);
  }

  /**
   * Attention over q, k and v as one [N, (H + 2 * Hkv) * hd] tensor (a stacked projection): one
   * Reshape and one Transpose make all three head-major, then a Split (three nodes, where a Split
   * then a Reshape and a Transpose per tensor took seven).
   */
  attentionStacked(l: number, qkv: string, perHead?: PerHead): string {
    const { numHeads: h, numKvHeads: kvh } = this.config;
    const heads = this.headMajor(qkv, h + 2 * kvh); // [B, H + 2 * Hkv, S, hd]
    const [q, k, v] = this.graph.opN('Split', [heads, this.graph.ints([h, kvh, kvh])], 3, { axis: 1 });
    return this.attendHeadMajor(l, q, k, v, perHead);
  }

  /** Token-major [N, heads * hd] as head-major [B, heads, S, hd]. */
  private headMajor(x: string, heads: number): string {
    const shaped = this.graph.op('Reshape', [x, this.batchShaped([heads, this.config.headDim])]);
    return this.graph.transpose(shaped, [0, 2, 1, 3]);
  }

  /** attention() from head-major q [B, H, S, hd], k and v [B, Hkv, S, hd]. */
  private attendHeadMajor(l: number, q: string, k: string, values: string, perHead: PerHead = (x) => x): string {
    const g = this.graph;
    const { numHeads: h, numKvHeads: kvh, headDim: hd } = this.config;
    const keys = perHead(k, 'k'); // [B, Hkv, S, hd]
    this.newKv.push(keys, values);
    // The queries are scaled before the score products, a Reshape away from them, so that onnxruntime's
    // CPU optimizer does not fold the scale into the products (FusedMatMul's alpha): its one-row
    // kernel, which reads the cached keys in place, takes only alpha = 1; any other alpha copies
    // every cached key into a packed panel at every step. Plain ops, so that a GPU provider, which
    // has no FusedMatMul (WebGPU), runs them as they are.
    const alpha = g.scalar(this.config.attentionScale ?? 1 / Math.sqrt(hd));
    const qGrouped = g.reshape(g.mul(perHead(q, 'q'), alpha), [0, kvh, -1, hd]); // [B, Hkv, G*S, hd]
    // q @ k^T over the cached keys, then over the new ones: the CPU optimizer makes each one
    // FusedMatMul (transB), which reads the keys where they are.
    const scoresOf = (k: string) => g.matmul(qGrouped, g.transpose(k, [0, 1, 3, 2]));
    let scores = g.concat([scoresOf(this.past(pastKey(l))), scoresOf(keys)], 3);
    if (this.config.attentionSoftcap) scores = this.softcap(scores, this.config.attentionSoftcap);
    const window = this.config.slidingWindow;
    const bias = window?.layers.includes(l) ? this.windowBias(window.size) : this.bias;
    const probs = g.op('Softmax', [g.add(scores, bias)], { axis: 3 });
    const [pPast, pNew] = g.opN('Split', [probs, this.splitSizes], 2, { axis: 3 });
    const out = g.add(g.matmul(pPast, this.past(pastValue(l))), g.matmul(pNew, values)); // [B, Hkv, G*S, hd]
    // [B, S, H, hd] (with one query head a key head, out is [B, H, S, hd] already)
    const heads = g.transpose(kvh === h ? out : g.reshape(out, [0, h, -1, hd]), [0, 2, 1, 3]);
    return g.reshape(heads, [-1, h * hd]);
  }

  /** The run's rows of a past input: the input itself on the host, its CACHE_IN.rows rows on the device. */
  private past(input: string): string {
    return this.kv === 'device' ? this.graph.gather(input, CACHE_IN.rows) : input;
  }

  /**
   * The end of block l: the residual stream h + delta (then the VLM adapter, for rows with one),
   * and, when another block follows, its norm `nextNorm`: one node with the add (see addNorm) when
   * no VLM adapter sits between the add and the norm.
   */
  endBlock(l: number, h: string, delta: string, nextNorm?: Norm): { h: string; normed?: string } {
    if (nextNorm && !this.adapters.features.vlm) {
      const { sum, normed } = this.addNorm(h, delta, nextNorm);
      return { h: sum, normed };
    }
    const out = this.adapters.vlm(l, this.graph.add(h, delta));
    return { h: out, normed: nextNorm && this.norm(out, nextNorm) };
  }

  /**
   * Logits of the scored tokens (each row's last): the base vocabulary, then the row's task tokens. A float32
   * head is [d, V] so that batch-1 decoding gets onnxruntime's GEMV kernel: with the PyTorch
   * [V, d] layout (a transposed Gemm) reading its 150 MB took GPT-2 small 4.6 ms instead of 2.5.
   */
  head(h: string, norm: (x: string) => string, table: EmbeddingTable): void {
    const last = norm(this.graph.gather(h, IN.lastIndex)); // [L, d]
    let logits = this.adapters.taskLogits(last, this.weights.timesVocab(last, table));
    if (this.config.finalSoftcap) logits = this.softcap(logits, this.config.finalSoftcap);
    this.graph.output(logits, LOGITS, 'float32', ['L', 'V']);
  }

  /**
   * The new keys and values out: on the host, stacked in one output; on the device, written into
   * the cache (ScatterND at CACHE_IN.index), which comes out whole as the next run's past. (onnxruntime
   * copies the cache into the output; a GPU does that at its memory's speed, where the host's copy
   * would cross the bus. GroupQueryAttention's in-place shared buffer needs an output bound to an
   * input's memory, which onnxruntime-node 1.30 does not do for device tensors.)
   */
  encode(): BuiltGraph {
    const g = this.graph;
    const { numKvHeads: kvh, headDim: hd } = this.config;
    if (this.kv === 'host') g.output(g.concat(this.newKv, 0), NEW_KV, 'float32', ['KV', kvh, 'S', hd]);
    else
      for (let l = 0; l < this.config.numLayers; l++) {
        const write = (past: string, present: string, x: string) =>
          g.output(g.op('ScatterND', [past, CACHE_IN.index, x]), present, 'float32', ['CacheRows', kvh, 'P', hd]);
        write(pastKey(l), presentKey(l), this.newKv[2 * l]);
        write(pastValue(l), presentValue(l), this.newKv[2 * l + 1]);
      }
    return g.encode(`${this.config.architecture}-decoder`);
  }
}
