import type { ModelConfig } from '../model/config.ts';
import { transpose2d, type Weights } from '../weights/tensor.ts';
import { blockWeight, DecoderGraph, type GraphFeatures } from './decoder.ts';

/**
 * Llama (Touvron et al. 2023): RMSNorm, rotary positions (llama2.c's interleaved pairs or
 * Hugging Face's rotate-half), grouped-query attention, SwiGLU MLP, tied or separate head.
 * PyTorch [out, in] projection weights are transposed once, here, to [in, out].
 */
export function buildLlama(c: ModelConfig, weights: Weights, features?: GraphFeatures): Uint8Array {
  const m = new DecoderGraph(c, weights, features);
  const g = m.g;
  const embedT = m.w('model.embed_tokens.weight', transpose2d); // [d, V]: see DecoderGraph.head
  let h = m.embed(embedT);
  for (let l = 0; l < c.numLayers; l++) {
    const name = (n: string) => blockWeight(c, l, n);
    const proj = (module: string, x: string) => {
      const bias = weights.has(name(`${module}.bias`)) ? m.w(name(`${module}.bias`)) : undefined;
      return m.linear(l, module, x, m.w(name(`${module}.weight`), transpose2d), bias);
    };

    const a = m.rmsNorm(h, m.w(name('input_layernorm.weight')));
    const q = m.rope(proj('self_attn.q_proj', a), c.numHeads);
    const k = m.rope(proj('self_attn.k_proj', a), c.numKvHeads);
    const v = proj('self_attn.v_proj', a);
    h = g.add(h, proj('self_attn.o_proj', m.attention(l, q, k, v)));

    const x = m.rmsNorm(h, m.w(name('post_attention_layernorm.weight')));
    const gated = g.mul(m.silu(proj('mlp.gate_proj', x)), proj('mlp.up_proj', x));
    h = g.add(h, proj('mlp.down_proj', gated));

    h = m.vlm(l, h);
  }
  const head = c.tiedEmbeddings ? embedT : m.w('lm_head.weight', transpose2d);
  m.head(h, (x) => m.rmsNorm(x, m.w('model.norm.weight')), head);
  return m.encode();
}
