import {
  CONFIG_LIMITS,
  eos,
  int,
  ModelFormatError,
  type Activation,
  type Architecture,
  type ModelConfig,
  type RopeScaling,
} from './config.ts';

/**
 * config.json of the Llama-family decoders (RMSNorm, rotate-half RoPE, grouped-query attention,
 * gated MLP), read with each transformers config class's defaults for absent fields: a field we do
 * not implement is refused by name, never ignored.
 */
type Family = Exclude<Architecture, 'gpt2'>;

const CLASSES: Record<Family, string> = {
  llama: 'LlamaForCausalLM',
  mistral: 'MistralForCausalLM',
  qwen2: 'Qwen2ForCausalLM',
  qwen3: 'Qwen3ForCausalLM',
  phi3: 'Phi3ForCausalLM',
  gemma: 'GemmaForCausalLM',
  gemma2: 'Gemma2ForCausalLM',
};
export const LLAMA_FAMILY_CLASSES = Object.values(CLASSES);

/** Defaults of the transformers config classes (used when config.json omits the field). */
const DEFAULTS: Record<
  Family,
  { maxPositions: number; eps: number; tied: boolean; headDim?: number; activation: Activation }
> = {
  llama: { maxPositions: 2048, eps: 1e-6, tied: false, activation: 'silu' },
  mistral: { maxPositions: 4096 * 32, eps: 1e-6, tied: false, activation: 'silu' },
  qwen2: { maxPositions: 32768, eps: 1e-6, tied: false, activation: 'silu' },
  qwen3: { maxPositions: 32768, eps: 1e-6, tied: false, headDim: 128, activation: 'silu' },
  phi3: { maxPositions: 4096, eps: 1e-5, tied: false, activation: 'silu' },
  gemma: { maxPositions: 8192, eps: 1e-6, tied: true, headDim: 256, activation: 'gelu_tanh' },
  gemma2: { maxPositions: 8192, eps: 1e-6, tied: true, headDim: 256, activation: 'gelu_tanh' },
};

export function llamaFamilyOf(type: string, archs: string[]): Family | undefined {
  if (Object.hasOwn(CLASSES, type)) return type as Family;
  return (Object.keys(CLASSES) as Family[]).find((f) => archs.includes(CLASSES[f]));
}

const ACTIVATIONS: Record<string, Activation> = {
  silu: 'silu',
  swish: 'silu',
  gelu_pytorch_tanh: 'gelu_tanh',
  gelu_new: 'gelu_tanh',
  gelu: 'gelu',
};

export function llamaFamilyConfig(family: Family, json: Record<string, unknown>): ModelConfig {
  const d = DEFAULTS[family];
  const hidden = int(json.hidden_size, 'hidden_size', CONFIG_LIMITS.hiddenSize);
  const heads = int(json.num_attention_heads, 'num_attention_heads', CONFIG_LIMITS.numHeads);
  const kvHeads =
    json.num_key_value_heads == null
      ? heads
      : int(json.num_key_value_heads, 'num_key_value_heads', CONFIG_LIMITS.numKvHeads);
  if (heads % kvHeads)
    throw new ModelFormatError(`config.json: ${heads} heads are not a multiple of ${kvHeads} key/value heads`);
  const headDim =
    json.head_dim != null ? int(json.head_dim, 'head_dim', CONFIG_LIMITS.headDim) : (d.headDim ?? hidden / heads);
  if (!Number.isInteger(headDim) || headDim % 2)
    throw new ModelFormatError(`config.json: head size ${headDim} must be an even integer`);
  const numLayers = int(json.num_hidden_layers, 'num_hidden_layers', CONFIG_LIMITS.numLayers);
  const rope = ropeOf(json);
  let maxPositions = int(
    json.max_position_embeddings ?? d.maxPositions,
    'max_position_embeddings',
    CONFIG_LIMITS.maxPositions,
  );
  // Dynamic NTK scaling changes nothing up to its original length: serve up to there, no further.
  if (rope.dynamicUpTo) maxPositions = Math.min(maxPositions, rope.dynamicUpTo);
  const config: ModelConfig = {
    architecture: family,
    vocabSize: int(json.vocab_size, 'vocab_size', CONFIG_LIMITS.vocabSize),
    hiddenSize: hidden,
    numLayers,
    numHeads: heads,
    numKvHeads: kvHeads,
    headDim,
    intermediateSize: int(json.intermediate_size, 'intermediate_size', CONFIG_LIMITS.intermediateSize),
    maxPositions,
    normEps: typeof json.rms_norm_eps === 'number' ? json.rms_norm_eps : d.eps,
    tiedEmbeddings: typeof json.tie_word_embeddings === 'boolean' ? json.tie_word_embeddings : d.tied,
    ropeTheta: rope.theta,
    ropeLayout: 'half',
    activation: activationOf(family, json, d.activation),
    bosTokenId: typeof json.bos_token_id === 'number' ? json.bos_token_id : undefined,
    eosTokenId: eos(json.eos_token_id),
  };
  if (rope.scaling) config.ropeScaling = rope.scaling;
  const window = slidingWindowOf(family, json, numLayers);
  if (window && window.size < maxPositions) config.slidingWindow = window;
  if (family === 'gemma2') {
    const scalar = json.query_pre_attn_scalar ?? 256;
    if (typeof scalar !== 'number' || !(scalar > 0))
      throw new ModelFormatError(`config.json: "query_pre_attn_scalar" must be a positive number`);
    config.attentionScale = scalar ** -0.5;
    const attnCap = softcap(json, 'attn_logit_softcapping', 50);
    const finalCap = softcap(json, 'final_logit_softcapping', 30);
    if (attnCap !== undefined) config.attentionSoftcap = attnCap;
    if (finalCap !== undefined) config.finalSoftcap = finalCap;
  }
  return config;
}

function activationOf(family: Family, json: Record<string, unknown>, fallback: Activation): Activation {
  // Gemma's MLP reads hidden_activation (Google's configs keep an older "gelu" in hidden_act).
  const field = family.startsWith('gemma') && json.hidden_activation != null ? 'hidden_activation' : 'hidden_act';
  const name = json[field];
  if (name == null) return fallback;
  const act = ACTIVATIONS[String(name)];
  if (!act) throw new ModelFormatError(`config.json: ${field} "${String(name)}" is not supported`);
  return act;
}

function softcap(json: Record<string, unknown>, field: string, fallback: number): number | undefined {
  const v = field in json ? json[field] : fallback;
  if (v == null) return undefined;
  if (typeof v !== 'number' || !(v > 0))
    throw new ModelFormatError(`config.json: "${field}" must be a positive number`);
  return v;
}

/**
 * The rotary base and scaling: rope_theta/rope_scaling, or transformers 5's rope_parameters.
 * "dynamic" NTK scaling only starts beyond its original length (see llamaFamilyConfig).
 */
function ropeOf(json: Record<string, unknown>): { theta: number; scaling?: RopeScaling; dynamicUpTo?: number } {
  const factor = json.partial_rotary_factor;
  if (factor != null && factor !== 1)
    throw new ModelFormatError(`config.json: partial_rotary_factor ${String(factor)} is not supported (only 1.0)`);
  const params = json.rope_parameters;
  let spec = (params ?? json.rope_scaling) as Record<string, unknown> | null | undefined;
  const field = params != null ? 'rope_parameters' : 'rope_scaling';
  if (spec != null && (typeof spec !== 'object' || Array.isArray(spec)))
    throw new ModelFormatError(`config.json: "${field}" must be an object`);
  // transformers 5 may give one set per layer type: served when they agree.
  const perType = spec && ['full_attention', 'sliding_attention'].flatMap((t) => (spec![t] ? [spec![t]] : []));
  if (perType?.length) {
    if (new Set(perType.map((p) => JSON.stringify(p))).size > 1)
      throw new ModelFormatError(`config.json: ${field} that differ per layer type are not supported`);
    spec = perType[0] as Record<string, unknown>;
  }
  const thetaValue = spec?.rope_theta ?? json.rope_theta ?? 10000;
  if (typeof thetaValue !== 'number' || !(thetaValue > 0))
    throw new ModelFormatError(`config.json: "rope_theta" must be a positive number`);
  if (spec == null) return { theta: thetaValue };
  const type = String(spec.rope_type ?? spec.type ?? 'default');
  const num = (key: string, fallback?: number) => {
    const v = spec[key] ?? fallback;
    if (typeof v !== 'number' || !(v > 0))
      throw new ModelFormatError(`config.json: ${field}.${key} must be a positive number (got ${JSON.stringify(v)})`);
    return v;
  };
  const originalMax = () => num('original_max_position_embeddings', json.original_max_position_embeddings as number);
  if (type === 'default') return { theta: thetaValue };
  if (type === 'linear') return { theta: thetaValue, scaling: { type, factor: num('factor') } };
  if (type === 'dynamic') {
    num('factor');
    const upTo = spec.original_max_position_embeddings ?? json.original_max_position_embeddings;
    return { theta: thetaValue, dynamicUpTo: typeof upTo === 'number' && upTo > 0 ? upTo : undefined };
  }
  if (type === 'llama3') {
    const scaling: RopeScaling = {
      type,
      factor: num('factor'),
      lowFreqFactor: num('low_freq_factor'),
      highFreqFactor: num('high_freq_factor'),
      originalMaxPositions: originalMax(),
    };
    if (scaling.highFreqFactor <= scaling.lowFreqFactor)
      throw new ModelFormatError(`config.json: ${field}.high_freq_factor must exceed low_freq_factor`);
    return { theta: thetaValue, scaling };
  }
  throw new ModelFormatError(
    `config.json: ${field} type "${type}" is not supported (supported: default, linear, dynamic, llama3)`,
  );
}

/**
 * Which layers attend over a sliding window, as transformers decides: layer_types when given; else
 * Mistral and Phi-3 every layer (when sliding_window is set), Qwen2/3 the layers from
 * max_window_layers on (only with use_sliding_window), Gemma 2 the even layers.
 */
function slidingWindowOf(
  family: Family,
  json: Record<string, unknown>,
  numLayers: number,
): { size: number; layers: number[] } | undefined {
  const fallback = family === 'mistral' || family === 'gemma2' ? 4096 : undefined;
  let size = 'sliding_window' in json ? json.sliding_window : fallback;
  if (family.startsWith('qwen') && json.use_sliding_window !== true) size = undefined;
  if (family === 'llama' || family === 'gemma') size = undefined;
  if (size == null) return undefined;
  const window = int(size, 'sliding_window');
  const types = json.layer_types;
  let layers: number[];
  if (Array.isArray(types)) {
    if (types.length !== numLayers)
      throw new ModelFormatError(`config.json: layer_types has ${types.length} entries for ${numLayers} layers`);
    types.forEach((t) => {
      if (t !== 'sliding_attention' && t !== 'full_attention')
        throw new ModelFormatError(`config.json: layer type "${String(t)}" is not supported`);
    });
    layers = types.flatMap((t, i) => (t === 'sliding_attention' ? [i] : []));
  } else {
    const all = Array.from({ length: numLayers }, (_, i) => i);
    if (family === 'gemma2') layers = all.filter((i) => i % 2 === 0);
    else if (family.startsWith('qwen')) {
      const from = typeof json.max_window_layers === 'number' ? json.max_window_layers : 28;
      layers = all.filter((i) => i >= from);
    } else layers = all;
  }
  return layers.length ? { size: window, layers } : undefined;
}
