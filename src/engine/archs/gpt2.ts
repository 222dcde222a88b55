import type { ModelConfig } from '../model/config.ts';
import type { LinearModule } from '../model/layout.ts';
import { CONFIG_LIMITS, eos, int, ModelFormatError } from '../model/config-json.ts';
import type { DecoderGraph } from '../graph/decoder.ts';
import type { ArchitectureModule } from './architecture.ts';

/**
 * GPT-2 (Radford et al. 2019): learned positions, pre-LayerNorm blocks, tanh-GELU MLP, output
 * head tied to the token embeddings. Conv1D weights are stored [in, out]; c_attn is already the
 * one product of q, k and v. Each residual add and the LayerNorm after it are one node.
 */
export const gpt2: ArchitectureModule<'gpt2'> = {
  name: 'gpt2',
  hfClass: 'GPT2LMHeadModel',
  config,
  layerPrefix: (layer) => `transformer.h.${layer}.`,
  matrixLayout: 'in_out',
  positionEmbeddings: 'transformer.wpe.weight',
  linearModules,
  weightShapes,
  decoder: {
    embeddings: 'transformer.wte.weight',
    embed: (m, table) => m.embed(table, m.weights.float32(gpt2.positionEmbeddings!)),
    inputNorm: (m, l) => layerNorm(m, m.blockWeight(l, 'ln_1')),
    block(m, l, h, normed) {
      const weight = (module: string, n: string) => m.blockWeight(l, `${module}.${n}`);
      const proj = (module: string, x: string) =>
        m.linear(l, module, x, weight(module, 'weight'), 'in_out', weight(module, 'bias'));

      const attended = m.attentionStacked(l, proj('attn.c_attn', normed));
      const x = m.addNorm(h, proj('attn.c_proj', attended), layerNorm(m, m.blockWeight(l, 'ln_2')));
      return { residual: x.sum, delta: proj('mlp.c_proj', m.geluTanh(proj('mlp.c_fc', x.normed))) };
    },
    finalNorm: (m) => layerNorm(m, 'transformer.ln_f'),
  },
};

/** A LayerNorm's graph weights, from its name without ".weight"/".bias". */
function layerNorm(m: DecoderGraph, name: string) {
  return { weight: m.weights.float32(`${name}.weight`), bias: m.weights.float32(`${name}.bias`) };
}

function config(json: Record<string, unknown>): ModelConfig {
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

function linearModules(c: ModelConfig): LinearModule[] {
  const d = c.hiddenSize;
  return [
    { name: 'attn.c_attn', in: d, out: 3 * d },
    { name: 'attn.c_proj', in: d, out: d },
    { name: 'mlp.c_fc', in: d, out: c.intermediateSize },
    { name: 'mlp.c_proj', in: c.intermediateSize, out: d },
  ];
}

/** Conv1D weights are [in, out]; every projection and LayerNorm has a bias. */
function weightShapes(c: ModelConfig): Map<string, number[]> {
  const d = c.hiddenSize;
  const shapes = new Map<string, number[]>();
  shapes.set('transformer.wte.weight', [c.vocabSize, d]);
  shapes.set(gpt2.positionEmbeddings!, [c.maxPositions, d]);
  for (let i = 0; i < c.numLayers; i++) {
    const p = gpt2.layerPrefix(i);
    for (const ln of ['ln_1', 'ln_2']) {
      shapes.set(`${p}${ln}.weight`, [d]);
      shapes.set(`${p}${ln}.bias`, [d]);
    }
    for (const m of linearModules(c)) {
      shapes.set(`${p}${m.name}.weight`, [m.in, m.out]);
      shapes.set(`${p}${m.name}.bias`, [m.out]);
    }
  }
  shapes.set('transformer.ln_f.weight', [d]);
  shapes.set('transformer.ln_f.bias', [d]);
  return shapes;
}
