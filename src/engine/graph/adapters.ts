import type { ModelConfig } from '../model/config.ts';
import { linearModules } from '../model/layout.ts';
import { VLM_LAYER_NORM_EPS } from '../adapters/format.ts';
import type { GraphBuilder } from './onnx.ts';
import { IN, loraInputs, vlmInputs } from './io.ts';

/** The adapter kinds a graph serves. */
export interface GraphFeatures {
  vlm: boolean;
  lora: boolean;
}
export const ALL_FEATURES: GraphFeatures = { vlm: true, lora: true };

/**
 * The adapters' side of the decoder graph, fed from the runtime's banks (see io.ts): LoRA deltas
 * of the block projections, VLM residual adapters after each block, and the VLM task tokens'
 * embeddings and logits. Rows of different adapters, or none, share one run: each adapter's rows
 * are gathered, adapted and scattered back.
 */
export class GraphAdapters {
  private readonly gathered = new Map<string, string>();
  private readonly constants = new Map<string, string>();

  constructor(
    private readonly graph: GraphBuilder,
    private readonly config: ModelConfig,
    /** Which adapter kinds the graph serves; an unused kind costs its ops on every step. */
    readonly features: GraphFeatures,
  ) {}

  /** The banks' inputs shared by every layer. */
  declareInputs(): void {
    const g = this.graph;
    if (this.features.vlm) {
      g.input(IN.taskIndex, 'int64', ['B', 'S']);
      g.input(IN.taskEmbeddings, 'float32', ['TaskRows', this.config.hiddenSize]);
      g.input(IN.taskHead, 'float32', ['U', this.config.hiddenSize, 'K']);
      g.input(IN.vlmGather, 'int64', ['U', 'R']);
      g.input(IN.vlmScatter, 'int64', ['N']);
      g.input(IN.headGather, 'int64', ['U', 'Rh']);
      g.input(IN.headScatter, 'int64', ['L']);
    }
    if (this.features.lora) {
      g.input(IN.loraGather, 'int64', ['Ul', 'Rl']);
      g.input(IN.loraScatter, 'int64', ['N']);
    }
  }

  /** The banks' inputs of layer l. */
  declareLayerInputs(l: number): void {
    const g = this.graph;
    const d = this.config.hiddenSize;
    if (this.features.vlm) {
      const v = vlmInputs(l);
      g.input(v.down, 'float32', ['U', d, `m${l}`]);
      g.input(v.downB, 'float32', ['U', 1, `m${l}`]);
      g.input(v.up, 'float32', ['U', `m${l}`, d]);
      g.input(v.upB, 'float32', ['U', 1, d]);
    }
    if (this.features.lora) {
      for (const m of linearModules(this.config)) {
        const io = loraInputs(l, m.name);
        g.input(io.a, 'float32', ['Ul', m.in, `r${l}.${m.name}`]);
        g.input(io.b, 'float32', ['Ul', `r${l}.${m.name}`, m.out]);
      }
    }
  }

  /** y = x @ W plus the LoRA delta of `module` for the rows whose LoRA slot adapts it. */
  lora(l: number, module: string, x: string, y: string): string {
    if (!this.features.lora) return y;
    const g = this.graph;
    const io = loraInputs(l, module);
    const delta = g.matmul(g.matmul(this.gatherRows(x, IN.loraGather), io.a), io.b);
    return g.add(y, this.scatterRows(delta, IN.loraScatter));
  }

  /** The VLM residual adapter after block l: h + up(ReLU(down(LayerNorm(h)))) for rows with one. */
  vlm(l: number, h: string): string {
    if (!this.features.vlm) return h;
    const g = this.graph;
    const d = this.config.hiddenSize;
    const io = vlmInputs(l);
    const ones = this.constantRow('ones', d, 1);
    const zeros = this.constantRow('zeros', d, 0);
    // The adapter's LayerNorm scale and shift are folded into its down projection by the bank.
    const epsilon = { float: VLM_LAYER_NORM_EPS };
    const normed = g.op('LayerNormalization', [h, ones, zeros], { axis: -1, epsilon });
    const z = g.op('Relu', [g.add(g.matmul(this.gatherRows(normed, IN.vlmGather), io.down), io.downB)]);
    const y = g.add(g.matmul(z, io.up), io.upB);
    return g.add(h, this.scatterRows(y, IN.vlmScatter));
  }

  /** Token embeddings x [B, S, d] where a row's task tokens take their embedding from its VLM slot. */
  taskEmbeddings(x: string): string {
    if (!this.features.vlm) return x;
    const g = this.graph;
    const task = g.gather(IN.taskEmbeddings, IN.taskIndex);
    const isTask = g.unsqueeze(g.op('Greater', [IN.taskIndex, g.ints([0])]), [2]);
    return g.op('Where', [isTask, task, x]);
  }

  /** The base vocabulary's logits [L, V], then each row's task-token logits from `last` [L, d]. */
  taskLogits(last: string, base: string): string {
    if (!this.features.vlm) return base;
    const g = this.graph;
    const task = this.scatterRows(g.matmul(g.gather(last, IN.headGather), IN.taskHead), IN.headScatter);
    return g.concat([base, task], 1);
  }

  /** Rows of x [N, k] grouped by adapter slot: [U, R, k]. Shared by projections with one input. */
  private gatherRows(x: string, index: string): string {
    const key = `${x}|${index}`;
    let out = this.gathered.get(key);
    if (!out) this.gathered.set(key, (out = this.graph.gather(x, index)));
    return out;
  }

  /** The inverse of gatherRows: [U, R, k] back to [N, k], zeros for rows without an adapter. */
  private scatterRows(y: string, index: string): string {
    const g = this.graph;
    const flat = g.op('Flatten', [y], { axis: 2 });
    return g.gather(g.op('Pad', [flat, g.ints([0, 0, 1, 0])]), index);
  }

  private constantRow(name: string, d: number, value: number): string {
    const key = `${name}_${d}`;
    if (!this.constants.has(key))
      this.constants.set(key, this.graph.tensor(key, { dims: [d], data: new Float32Array(d).fill(value) }));
    return this.constants.get(key)!;
  }
}
