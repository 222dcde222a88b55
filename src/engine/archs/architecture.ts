import type { ModelConfig } from '../model/config.ts';
import type { LinearModule } from '../model/layout.ts';
import type { DecoderGraph, Norm } from '../graph/decoder.ts';
import type { EmbeddingTable, MatrixLayout } from '../graph/weight-matrices.ts';

/**
 * What one architecture declares, in one module: how its config.json reads, where its weights
 * live, which projections a LoRA may target, and its decoder block. The loaders, the adapter
 * validator and the graph assembly (graph/build.ts) ask these and never switch on the name.
 * The graph side is imported as types only: the registry reads configs without the graph code.
 */
export interface ArchitectureModule<Name extends string = string> {
  /** ModelConfig.architecture; config.json's model_type selects it too. */
  name: Name;
  /** The transformers class in config.json's "architectures". */
  hfClass: string;
  /** The ModelConfig of a config.json, with the transformers config class's defaults for absent fields. */
  config(json: Record<string, unknown>): ModelConfig;
  /** The name prefix of block `layer`'s weights, e.g. "model.layers.3.". */
  layerPrefix(layer: number): string;
  /** How the checkpoint stores projections: nn.Linear [out, in], or GPT-2's Conv1D [in, out]. */
  matrixLayout: MatrixLayout;
  /** The learned position table [maxPositions, d] (GPT-2's wpe), of which a token reads one row; none with RoPE. */
  positionEmbeddings?: string;
  /** The block's projections, which a LoRA adapter may target. */
  linearModules(c: ModelConfig): LinearModule[];
  /** Every weight the graph needs, with its shape as stored. */
  weightShapes(c: ModelConfig): Map<string, number[]>;
  decoder: DecoderSpec;
}

/**
 * The decoder graph, as graph/build.ts assembles it: embeddings, then per block the input norm
 * and `block`, whose last residual add meets the next block's norm in one node; then the final
 * norm and the head (tied to the embeddings, or lm_head.weight).
 */
export interface DecoderSpec {
  /** The token-embedding table's weight name. */
  embeddings: string;
  /** Token embeddings [N, d] from the table (plus learned positions, or scaled). */
  embed(m: DecoderGraph, table: EmbeddingTable): string;
  /** The norm before block `layer`'s attention. */
  inputNorm(m: DecoderGraph, layer: number): Norm;
  /**
   * Block `layer`, given the residual stream `h` and its input norm `normed`: the stream before
   * the block's last residual add, and what that add adds.
   */
  block(m: DecoderGraph, layer: number, h: string, normed: string): { residual: string; delta: string };
  /** The norm before the head. */
  finalNorm(m: DecoderGraph): Norm;
}
