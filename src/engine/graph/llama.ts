import type { ModelConfig } from '../model/config.ts';
import type { WeightSource } from '../weights/stored.ts';
import type { WeightFormat } from '../weights/quantize.ts';
import { blockWeight, DecoderGraph, type GraphFeatures } from './decoder.ts';
import type { BuiltGraph } from './onnx.ts';

/**
 * Llama (Touvron et al. 2023): RMSNorm, rotary positions (llama2.c's interleaved pairs or
 * Hugging Face's rotate-half), grouped-query attention, SwiGLU MLP, tied or separate head.
 * Projection weights stay in PyTorch's [out, in] layout. The same page serves the models that
 * kept this layout: Mistral (sliding window, in decoder.ts), Qwen2 (q/k/v biases, read when the
 * checkpoint has them) and Qwen3 (per-head RMSNorm of queries and keys before RoPE).
 */
export function buildLlama(
  c: ModelConfig,
  weights: WeightSource,
  features?: GraphFeatures,
  format?: WeightFormat,
): BuiltGraph {
  const m = new DecoderGraph(c, weights, features, format);
  const g = m.g;
  const embeddings = m.vocabTable('model.embed_tokens.weight');
  let h = m.embed(embeddings);
  for (let l = 0; l < c.numLayers; l++) {
    const name = (n: string) => blockWeight(c, l, n);
    const proj = (module: string, x: string) => m.hfProjection(l, module, x);

    const a = m.rmsNorm(h, m.w(name('input_layernorm.weight')));
    const headNorm = (x: string, heads: number, norm: string) =>
      c.architecture === 'qwen3' ? m.perHeadRmsNorm(x, heads, m.w(name(`self_attn.${norm}.weight`))) : x;
    const q = m.rope(headNorm(proj('self_attn.q_proj', a), c.numHeads, 'q_norm'), c.numHeads);
    const k = m.rope(headNorm(proj('self_attn.k_proj', a), c.numKvHeads, 'k_norm'), c.numKvHeads);
    const v = proj('self_attn.v_proj', a);
    h = g.add(h, proj('self_attn.o_proj', m.attention(l, q, k, v)));

    const x = m.rmsNorm(h, m.w(name('post_attention_layernorm.weight')));
    const gated = g.mul(m.activation(proj('mlp.gate_proj', x)), proj('mlp.up_proj', x));
    h = g.add(h, proj('mlp.down_proj', gated));

    h = m.vlm(l, h);
  }
  const head = c.tiedEmbeddings ? embeddings : m.vocabTable('lm_head.weight');
  m.head(h, (x) => m.rmsNorm(x, m.w('model.norm.weight')), head);
  return m.encode();
}
