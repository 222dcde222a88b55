/**
 * The architecture-independent description of a decoder-only transformer: everything the graph
 * builders, the KV cache and the adapter validator need to know, and nothing about where the
 * weights came from.
 */
type Architecture = 'gpt2' | 'llama';

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
  bosTokenId?: number;
  eosTokenId?: number | number[];
}

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

function int(value: unknown, field: string, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) {
    throw new ModelFormatError(`config.json: "${field}" must be a positive integer (got ${JSON.stringify(value)})`);
  }
  if (value > max) throw new ModelFormatError(`config.json: "${field}" is ${value}, over the limit of ${max}`);
  return value;
}

/** Reads a Hugging Face config.json object (GPT2LMHeadModel or LlamaForCausalLM). */
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
  if (type === 'llama' || archs.includes('LlamaForCausalLM')) {
    const act = json.hidden_act ?? 'silu';
    if (act !== 'silu')
      throw new ModelFormatError(`config.json: Llama activation "${String(act)}" is not supported (only silu)`);
    if (json.rope_scaling != null) throw new ModelFormatError('config.json: rope_scaling is not supported');
    const d = int(json.hidden_size, 'hidden_size', CONFIG_LIMITS.hiddenSize);
    const heads = int(json.num_attention_heads, 'num_attention_heads', CONFIG_LIMITS.numHeads);
    const kvHeads =
      json.num_key_value_heads == null
        ? heads
        : int(json.num_key_value_heads, 'num_key_value_heads', CONFIG_LIMITS.numKvHeads);
    if (heads % kvHeads)
      throw new ModelFormatError(`config.json: ${heads} heads are not a multiple of ${kvHeads} key/value heads`);
    const headDim = json.head_dim == null ? d / heads : int(json.head_dim, 'head_dim', CONFIG_LIMITS.headDim);
    if (!Number.isInteger(headDim) || headDim % 2)
      throw new ModelFormatError(`config.json: head size ${headDim} must be an even integer`);
    return {
      architecture: 'llama',
      vocabSize: int(json.vocab_size, 'vocab_size', CONFIG_LIMITS.vocabSize),
      hiddenSize: d,
      numLayers: int(json.num_hidden_layers, 'num_hidden_layers', CONFIG_LIMITS.numLayers),
      numHeads: heads,
      numKvHeads: kvHeads,
      headDim,
      intermediateSize: int(json.intermediate_size, 'intermediate_size', CONFIG_LIMITS.intermediateSize),
      maxPositions: int(json.max_position_embeddings ?? 2048, 'max_position_embeddings', CONFIG_LIMITS.maxPositions),
      normEps: typeof json.rms_norm_eps === 'number' ? json.rms_norm_eps : 1e-6,
      tiedEmbeddings: json.tie_word_embeddings === true,
      ropeTheta: typeof json.rope_theta === 'number' ? json.rope_theta : 10000,
      ropeLayout: 'half',
      bosTokenId: typeof json.bos_token_id === 'number' ? json.bos_token_id : undefined,
      eosTokenId: eos(json.eos_token_id),
    };
  }
  throw new ModelFormatError(
    `config.json: unsupported model (model_type "${type}", architectures ${JSON.stringify(archs)}); ` +
      'supported: GPT2LMHeadModel, LlamaForCausalLM',
  );
}

function eos(v: unknown): number | number[] | undefined {
  if (typeof v === 'number') return v;
  if (Array.isArray(v) && v.every((x) => typeof x === 'number')) return v as number[];
  return undefined;
}

/** Parameter count of the base model (embeddings counted once when tied). */
export function parameterCount(c: ModelConfig): number {
  const d = c.hiddenSize;
  const kv = c.numKvHeads * c.headDim;
  const q = c.numHeads * c.headDim;
  const embed = c.vocabSize * d + (c.tiedEmbeddings ? 0 : c.vocabSize * d);
  if (c.architecture === 'gpt2') {
    const block = 4 * d + d * 3 * d + 3 * d + d * d + d + d * c.intermediateSize * 2 + c.intermediateSize + d;
    return embed + c.maxPositions * d + c.numLayers * block + 2 * d;
  }
  const block = 2 * d + d * q + 2 * d * kv + q * d + 3 * d * c.intermediateSize;
  return embed + c.numLayers * block + d;
}

export function eosIds(c: ModelConfig): number[] {
  if (c.eosTokenId == null) return [];
  return Array.isArray(c.eosTokenId) ? c.eosTokenId : [c.eosTokenId];
}
