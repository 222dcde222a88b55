import { ARCHITECTURE_MODULES, architectureOfHf } from '../archs/index.ts';
import { weightShapes } from './layout.ts';
import { ModelFormatError } from './config-json.ts';

export { CONFIG_LIMITS, ModelFormatError } from './config-json.ts';

/** The architectures' names, from the list of their modules (archs/index.ts). */
export const ARCHITECTURES = ARCHITECTURE_MODULES.map((a) => a.name) as unknown as NamesOf<typeof ARCHITECTURE_MODULES>;
export type Architecture = (typeof ARCHITECTURES)[number];
type NamesOf<Modules> = { readonly [K in keyof Modules]: Modules[K] extends { name: infer Name } ? Name : never };

/** llama2.c checkpoints pair dimensions (0,1),(2,3)...; Hugging Face Llama rotates halves. */
type RopeLayout = 'interleaved' | 'half';

/**
 * The architecture-independent description of a decoder-only transformer: everything the graph
 * builders, the KV cache and the adapter validator need to know, and nothing about where the
 * weights came from.
 */
export interface ModelConfig {
  architecture: Architecture;
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  intermediateSize: number;
  maxPositions: number;
  normEps: number;
  /** The output head is the token embedding matrix (GPT-2 always; Llama when tied). */
  tiedEmbeddings: boolean;
  ropeTheta?: number;
  ropeLayout?: RopeLayout;
  /** Rescaled rotary frequencies (transformers' rope_scaling); none when absent. */
  ropeScaling?: RopeScaling;
  /** The MLP's activation (Llama family; default silu). */
  activation?: Activation;
  /** Attention scores are q.k times this (default headDim^-0.5; Gemma 2: query_pre_attn_scalar^-0.5). */
  attentionScale?: number;
  /** tanh soft-capping of attention scores and of the final logits (Gemma 2). */
  attentionSoftcap?: number;
  finalSoftcap?: number;
  /** Sliding-window attention: a query sees the `size` latest positions (itself included) in `layers`. */
  slidingWindow?: { size: number; layers: number[] };
  bosTokenId?: number;
  eosTokenId?: number | number[];
}

export type Activation = 'silu' | 'gelu_tanh' | 'gelu';

export type RopeScaling =
  | { type: 'linear'; factor: number }
  | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositions: number };

/** Reads a Hugging Face config.json object with the module of its architecture (archs/index.ts). */
export function configFromHf(json: Record<string, unknown>): ModelConfig {
  const type = String(json.model_type ?? '');
  const classes = Array.isArray(json.architectures) ? (json.architectures as string[]) : [];
  const arch = architectureOfHf(type, classes);
  if (arch) return arch.config(json);
  throw new ModelFormatError(
    `config.json: unsupported model (model_type "${type}", architectures ${JSON.stringify(classes)}); ` +
      `supported: ${ARCHITECTURE_MODULES.map((a) => a.hfClass).join(', ')}`,
  );
}

/** Parameter count of the base model (embeddings counted once when tied; optional biases not counted). */
export function parameterCount(c: ModelConfig): number {
  let n = 0;
  for (const dims of weightShapes(c).values()) n += dims.reduce((a, b) => a * b, 1);
  return n;
}

export function eosIds(c: ModelConfig): number[] {
  if (c.eosTokenId == null) return [];
  return Array.isArray(c.eosTokenId) ? c.eosTokenId : [c.eosTokenId];
}
