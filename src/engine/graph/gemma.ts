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
  const embeddings = m.vocabTable('model.embed_tokens.weight');
  let h = g.mul(m.embed(embeddings), g.scalar(Math.sqrt(c.hiddenSize)));
  for (let l = 0; l < c.numLayers; l++) {
    const name = (n: string) => blockWeight(c, l, n);
    const norm = (x: string, weight: string) => m.rmsNorm(x, m.onePlus(name(`${weight}.weight`)));
    const proj = (module: string, x: string) => m.hfProjection(l, module, x);

    const a = norm(h, 'input_layernorm');
    const q = m.rope(proj('self_attn.q_proj', a), c.numHeads);
    const k = m.rope(proj('self_attn.k_proj', a), c.numKvHeads);
    const attended = proj('self_attn.o_proj', m.attention(l, q, k, proj('self_attn.v_proj', a)));
    // In Gemma 2, post_attention_layernorm normalises the attention output; in Gemma it is the pre-MLP norm.
    h = g.add(h, gemma2 ? norm(attended, 'post_attention_layernorm') : attended);

    const x = norm(h, gemma2 ? 'pre_feedforward_layernorm' : 'post_attention_layernorm');
    const mlp = proj('mlp.down_proj', g.mul(m.activation(proj('mlp.gate_proj', x)), proj('mlp.up_proj', x)));
    h = g.add(h, gemma2 ? norm(mlp, 'post_feedforward_layernorm') : mlp);

    h = m.vlm(l, h);
  }
  const head = c.tiedEmbeddings ? embeddings : m.vocabTable('lm_head.weight');
  m.head(h, (x) => m.rmsNorm(x, m.onePlus('model.norm.weight')), head);
  return m.encode();
}
