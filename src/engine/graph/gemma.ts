import type { ModelConfig } from '../model/config.ts';
import type { WeightSource } from '../weights/stored.ts';
import type { WeightFormat } from '../weights/quantize.ts';
import { blockWeight, DecoderGraph, type GraphFeatures } from './decoder.ts';
import type { BuiltGraph } from './onnx.ts';

/**
 * Gemma (Gemma Team 2024): the Llama block with embeddings scaled by sqrt(hidden) (a float32
 * constant), RMSNorm weights applied as (1 + w), a GELU-gated MLP and a tied head. Gemma 2 adds
 * a norm after attention and around the MLP, query_pre_attn_scalar, soft-capped attention scores
 * and logits, and sliding-window layers (the last three are config-driven, in decoder.ts).
 */
export function buildGemma(
  c: ModelConfig,
  weights: WeightSource,
  features?: GraphFeatures,
  format?: WeightFormat,
): BuiltGraph {
  const m = new DecoderGraph(c, weights, features, format);
  const g = m.g;
  const gemma2 = c.architecture === 'gemma2';
  const norm = (l: number, n: string) => ({ weight: m.onePlus(blockWeight(c, l, `${n}.weight`)) });
  const embeddings = m.vocabTable('model.embed_tokens.weight');
  let h = g.mul(m.embed(embeddings), g.scalar(Math.sqrt(c.hiddenSize)));
  let a = m.norm(h, norm(0, 'input_layernorm'));
  for (let l = 0; l < c.numLayers; l++) {
    const proj = (module: string, x: string) => m.hfProjection(l, module, x);

    const [qp, kp, vp] = m.fusedHfProjections(l, ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj'], a);
    const attended = proj(
      'self_attn.o_proj',
      m.attention(l, qp, kp, vp, (x) => m.rope(x)),
    );
    // In Gemma 2, post_attention_layernorm normalises the attention output; in Gemma it is the pre-MLP norm.
    const x = gemma2
      ? m.addNorm(h, m.norm(attended, norm(l, 'post_attention_layernorm')), norm(l, 'pre_feedforward_layernorm'))
      : m.addNorm(h, attended, norm(l, 'post_attention_layernorm'));

    const [gate, up] = m.fusedHfProjections(l, ['mlp.gate_proj', 'mlp.up_proj'], x.normed);
    const mlp = proj('mlp.down_proj', g.mul(m.activation(gate), up));
    const delta = gemma2 ? m.norm(mlp, norm(l, 'post_feedforward_layernorm')) : mlp;
    const end = m.endBlock(l, x.sum, delta, l + 1 < c.numLayers ? norm(l + 1, 'input_layernorm') : undefined);
    h = end.h;
    a = end.normed ?? '';
  }
  const head = c.tiedEmbeddings ? embeddings : m.vocabTable('lm_head.weight');
  m.head(h, (x) => m.rmsNorm(x, m.onePlus('model.norm.weight')), head);
  return m.encode();
}
