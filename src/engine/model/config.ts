import { weightShapes } from './layout.ts';
import { llamaFamilyConfig, llamaFamilyOf, LLAMA_FAMILY_CLASSES } from './llama-family.ts';

/**
 * The architecture-independent description of a decoder-only transformer: everything the graph
 * builders, the KV cache and the adapter validator need to know, and nothing about where the
 * weights came from.
 */
export const ARCHITECTURES = ['gpt2', 'llama', 'mistral', 'qwen2', 'qwen3', 'phi3', 'gemma', 'gemma2'] as const;
export type Architecture = (typeof ARCHITECTURES)[number];

/** llama2.c checkpoints pair dimensions (0,1),(2,3)...; Hugging Face Llama rotates halves. */
type RopeLayout = 'interleaved' | 'half';

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

export class ModelFormatError extends Error {
  override name = 'ModelFormatError';
}

/**
 * Upper bounds of a model's dimensions: generous for any real model (Llama 3.1 405B has 126 layers,
 * hidden 16384, vocabulary 128256), small enough that a config cannot make the server allocate or
 * loop over absurd sizes before it is refused.
 */
export const CONFIG_LIMITS = {
  vocabSize: 1 << 21,
  hiddenSize: 1 << 16,
  numLayers: 1024,
  numHeads: 1024,
  numKvHeads: 1024,
  headDim: 1024,
  intermediateSize: 1 << 20,
  maxPositions: 1 << 22,
} as const;

export function int(value: unknown, field: string, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) {
    throw new ModelFormatError(`config.json: "${field}" must be a positive integer (got ${JSON.stringify(value)})`);
  }
  if (value > max) throw new ModelFormatError(`config.json: "${field}" is ${value}, over the limit of ${max}`);
  return value;
}

/** Reads a Hugging Face config.json object (GPT2LMHeadModel or one of the Llama family, see llama-family.ts). */
export function configFromHf(json: Record<string, unknown>): ModelConfig {
  const type = String(json.model_type ?? '');
  const archs = Array.isArray(json.architectures) ? (json.architectures as string[]) : [];
  if (type === 'gpt2' || archs.includes('GPT2LMHeadModel')) {
    const act = json.activation_function ?? 'gelu_new';
    if (act !== 'gelu_new' && act !== 'gelu_pytorch_tanh') {
      throw new ModelFormatError(`config.json: GPT-2 activation "${String(act)}" is not supported (only gelu_new)`);
    }
    if (json.scale_attn_by_inverse_layer_idx || json.reorder_and_upcast_attn) {
      throw new ModelFormatError(
        'config.json: scale_attn_by_inverse_layer_idx / reorder_and_upcast_attn are not supported',
      );
    }
    const d = int(json.n_embd, 'n_embd', CONFIG_LIMITS.hiddenSize);
    const heads = int(json.n_head, 'n_head', CONFIG_LIMITS.numHeads);
    if (d % heads) throw new ModelFormatError(`config.json: n_embd ${d} is not divisible by n_head ${heads}`);
    return {
      architecture: 'gpt2',
      vocabSize: int(json.vocab_size, 'vocab_size', CONFIG_LIMITS.vocabSize),
      hiddenSize: d,
      numLayers: int(json.n_layer, 'n_layer', CONFIG_LIMITS.numLayers),
      numHeads: heads,
      numKvHeads: heads,
      headDim: d / heads,
      intermediateSize: json.n_inner == null ? 4 * d : int(json.n_inner, 'n_inner', CONFIG_LIMITS.intermediateSize),
      maxPositions: int(json.n_positions ?? json.n_ctx, 'n_positions', CONFIG_LIMITS.maxPositions),
      normEps: typeof json.layer_norm_epsilon === 'number' ? json.layer_norm_epsilon : 1e-5,
      tiedEmbeddings: true,
      bosTokenId: typeof json.bos_token_id === 'number' ? json.bos_token_id : undefined,
      eosTokenId: eos(json.eos_token_id),
    };
  }
  const family = llamaFamilyOf(type, archs);
  if (family) return llamaFamilyConfig(family, json);
  throw new ModelFormatError(
    `config.json: unsupported model (model_type "${type}", architectures ${JSON.stringify(archs)}); ` +
      `supported: GPT2LMHeadModel, ${LLAMA_FAMILY_CLASSES.join(', ')}`,
  );
}

export function eos(v: unknown): number | number[] | undefined {
  if (typeof v === 'number') return v;
  if (Array.isArray(v) && v.every((x) => typeof x === 'number')) return v as number[];
  return undefined;
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
