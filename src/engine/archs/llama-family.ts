import type { Activation, Architecture, ModelConfig, RopeScaling } from '../model/config.ts';
import type { LinearModule } from '../model/layout.ts';
import { CONFIG_LIMITS, eos, int, ModelFormatError } from '../model/config-json.ts';
import type { DecoderGraph } from '../graph/decoder.ts';
import type { ArchitectureModule, DecoderSpec } from './architecture.ts';

/**
 * The Llama family of decoders (RMSNorm, rotate-half RoPE, grouped-query attention, gated MLP):
 * what its members share, which each member's module (llama.ts, mistral.ts, ...) specialises with
 * a LlamaFamilySpec. config.json is read with each transformers config class's defaults for
 * absent fields: a field we do not implement is refused by name, never ignored.
 */
export interface LlamaFamilySpec<Name extends Architecture> {
  name: Name;
  hfClass: string;
  /** Defaults of the transformers config class (used when config.json omits the field). */
  defaults: { maxPositions: number; eps: number; tied: boolean; headDim?: number; activation: Activation };
  /** The field naming the MLP's activation when present (Gemma's hidden_activation); else hidden_act. */
  activationField?: string;
  /** Whether and where the architecture attends over a sliding window; none when absent. */
  slidingWindow?: SlidingWindowRule;
  /** Fields beyond the family's (Gemma 2's attention scale and soft-caps). */
  readConfig?(json: Record<string, unknown>, config: ModelConfig): void;
  /** The block's projections (default: separate q/k/v/o and gate/up/down). */
  linearModules?(c: ModelConfig): LinearModule[];
  /** Per-layer weights beyond the Llama block's (names inside the block). */
  extraWeights?(c: ModelConfig): Array<[string, number[]]>;
  /** RMSNorm weights as the graph applies them (Gemma: 1 + w). */
  normWeight?(m: DecoderGraph, name: string): string;
  embed?: DecoderSpec['embed'];
  block: DecoderSpec['block'];
}

/**
 * Which layers attend over a sliding window when config.json has no layer_types: `layers` (all
 * when absent) with `defaultSize` when sliding_window is absent; `optIn`: only with
 * use_sliding_window (Qwen2/3).
 */
interface SlidingWindowRule {
  defaultSize?: number;
  optIn?: boolean;
  layers?(layer: number, json: Record<string, unknown>): boolean;
}

const layerPrefix = (layer: number) => `model.layers.${layer}.`;

/** The module of a Llama-family architecture. */
export function llamaFamily<Name extends Architecture>(spec: LlamaFamilySpec<Name>): ArchitectureModule<Name> {
  const linearModules = spec.linearModules ?? llamaProjections;
  const normWeight = spec.normWeight ?? ((m: DecoderGraph, name: string) => m.weights.float32(name));
  return {
    name: spec.name,
    hfClass: spec.hfClass,
    config: (json) => llamaFamilyConfig(spec, json),
    layerPrefix,
    matrixLayout: 'out_in',
    linearModules,
    weightShapes(c) {
      const d = c.hiddenSize;
      const shapes = new Map<string, number[]>();
      shapes.set('model.embed_tokens.weight', [c.vocabSize, d]);
      for (let i = 0; i < c.numLayers; i++) {
        const p = layerPrefix(i);
        shapes.set(`${p}input_layernorm.weight`, [d]);
        shapes.set(`${p}post_attention_layernorm.weight`, [d]);
        for (const m of linearModules(c)) shapes.set(`${p}${m.name}.weight`, [m.out, m.in]);
        for (const [name, dims] of spec.extraWeights?.(c) ?? []) shapes.set(`${p}${name}`, dims);
      }
      shapes.set('model.norm.weight', [d]);
      if (!c.tiedEmbeddings) shapes.set('lm_head.weight', [c.vocabSize, d]);
      return shapes;
    },
    decoder: {
      embeddings: 'model.embed_tokens.weight',
      embed: spec.embed ?? ((m, table) => m.embed(table)),
      inputNorm: (m, l) => ({ weight: normWeight(m, m.blockWeight(l, 'input_layernorm.weight')) }),
      block: spec.block,
      finalNorm: (m) => ({ weight: normWeight(m, 'model.norm.weight') }),
    },
  };
}

function llamaProjections(c: ModelConfig): LinearModule[] {
  const d = c.hiddenSize;
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const ff = c.intermediateSize;
  return [
    { name: 'self_attn.q_proj', in: d, out: q },
    { name: 'self_attn.k_proj', in: d, out: kv },
    { name: 'self_attn.v_proj', in: d, out: kv },
    { name: 'self_attn.o_proj', in: q, out: d },
    { name: 'mlp.gate_proj', in: d, out: ff },
    { name: 'mlp.up_proj', in: d, out: ff },
    { name: 'mlp.down_proj', in: ff, out: d },
  ];
}

/**
 * The Llama block: attention over one product of q/k/v (rotary on queries and keys, after
 * `perHead` when given), then a gated MLP over one product of gate/up.
 */
export function llamaBlock(
  perHead?: (m: DecoderGraph, l: number, x: string, of: 'q' | 'k') => string,
): DecoderSpec['block'] {
  return (m, l, h, normed) => {
    const proj = (module: string, x: string) => m.projection(l, module, x);
    const rotary = (x: string, of: 'q' | 'k') => m.rope(perHead ? perHead(m, l, x, of) : x);

    const attended = proj('self_attn.o_proj', m.qkvAttention(l, normed, rotary));
    const x = m.addNorm(h, attended, {
      weight: m.weights.float32(m.blockWeight(l, 'post_attention_layernorm.weight')),
    });

    const [gate, up] = m.fusedProjections(l, ['mlp.gate_proj', 'mlp.up_proj'], x.normed);
    return { residual: x.sum, delta: proj('mlp.down_proj', m.graph.mul(m.activation(gate), up)) };
  };
}

const ACTIVATIONS: Record<string, Activation> = {
  silu: 'silu',
  swish: 'silu',
  gelu_pytorch_tanh: 'gelu_tanh',
  gelu_new: 'gelu_tanh',
  gelu: 'gelu',
};

function llamaFamilyConfig<Name extends Architecture>(
  spec: LlamaFamilySpec<Name>,
  json: Record<string, unknown>,
): ModelConfig {
  const d = spec.defaults;
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
    architecture: spec.name,
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
    activation: activationOf(spec, json),
    bosTokenId: typeof json.bos_token_id === 'number' ? json.bos_token_id : undefined,
    eosTokenId: eos(json.eos_token_id),
  };
  if (rope.scaling) config.ropeScaling = rope.scaling;
  const window = slidingWindowOf(spec.slidingWindow, json, numLayers);
  if (window && window.size < maxPositions) config.slidingWindow = window;
  spec.readConfig?.(json, config);
  return config;
}

function activationOf<Name extends Architecture>(
  spec: LlamaFamilySpec<Name>,
  json: Record<string, unknown>,
): Activation {
  const field = spec.activationField && json[spec.activationField] != null ? spec.activationField : 'hidden_act';
  const name = json[field];
  if (name == null) return spec.defaults.activation;
  const act = ACTIVATIONS[String(name)];
  if (!act) throw new ModelFormatError(`config.json: ${field} "${String(name)}" is not supported`);
  return act;
}

export function softcap(json: Record<string, unknown>, field: string, fallback: number): number | undefined {
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

/** Which layers attend over a sliding window, as transformers decides: layer_types when given, else `rule`. */
function slidingWindowOf(
  rule: SlidingWindowRule | undefined,
  json: Record<string, unknown>,
  numLayers: number,
): { size: number; layers: number[] } | undefined {
  if (!rule || (rule.optIn && json.use_sliding_window !== true)) return undefined;
  const size = 'sliding_window' in json ? json.sliding_window : rule.defaultSize;
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
    layers = Array.from({ length: numLayers }, (_, i) => i).filter((i) => rule.layers?.(i, json) ?? true);
  }
  return layers.length ? { size: window, layers } : undefined;
}
