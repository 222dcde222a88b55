import type { ModelConfig } from '../model/config.ts';
import type { WeightSource } from '../weights/stored.ts';
import type { WeightFormat } from '../weights/quantize.ts';
import { blockWeight, DecoderGraph, type GraphFeatures } from './decoder.ts';
import type { BuiltGraph } from './onnx.ts';

/**
 * Llama (Touvron et al. 2023): RMSNorm, rotary positions (llama2.c's interleaved pairs or
 * Hugging Face's rotate-half), grouped-query attention, SwiGLU MLP, tied or separate head.
 * Projection weights stay in PyTorch's [out, in] layout; q/k/v and gate/up are each one product
 * over their stacked weights. The same page serves the models that kept this layout: Mistral
 * (sliding window, in decoder.ts), Qwen2 (q/k/v biases, read when the checkpoint has them) and
 * Qwen3 (per-head RMSNorm of queries and keys before RoPE).
 */
export function buildLlama(
  c: ModelConfig,
  weights: WeightSource,
  features?: GraphFeatures,
  format?: WeightFormat,
): BuiltGraph {
  const m = new DecoderGraph(c, weights, features, format);
  const g = m.g;
  const norm = (l: number, n: string) => ({ weight: m.w(blockWeight(c, l, `${n}.weight`)) });
  const embeddings = m.vocabTable('model.embed_tokens.weight');
  let h = m.embed(embeddings);
  let a = m.norm(h, norm(0, 'input_layernorm'));
  for (let l = 0; l < c.numLayers; l++) {
    const proj = (module: string, x: string) => m.hfProjection(l, module, x);
    // Qwen3 normalises each head of the queries and keys (q_norm, k_norm) before rotary.
    const perHead = (x: string, of: 'q' | 'k') =>
      m.rope(c.architecture === 'qwen3' ? m.rmsNorm(x, norm(l, `self_attn.${of}_norm`).weight) : x);

    const qkv = m.fusedHfProjections(l, ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj'], a);
    const attended = proj('self_attn.o_proj', m.attention(l, qkv[0], qkv[1], qkv[2], perHead));
    const x = m.addNorm(h, attended, norm(l, 'post_attention_layernorm'));

    const [gate, up] = m.fusedHfProjections(l, ['mlp.gate_proj', 'mlp.up_proj'], x.normed);
    const mlp = proj('mlp.down_proj', g.mul(m.activation(gate), up));
    const end = m.endBlock(l, x.sum, mlp, l + 1 < c.numLayers ? norm(l + 1, 'input_layernorm') : undefined);
    h = end.h;
    a = end.normed ?? ''; // '' after the last block, whose stream the head normalises
  }
  const head = c.tiedEmbeddings ? embeddings : m.vocabTable('lm_head.weight');
  m.head(h, (x) => m.rmsNorm(x, m.w('model.norm.weight')), head);
  return m.encode();
}
