import type { ModelConfig } from '../model/config.ts';
import type { WeightSource } from '../weights/stored.ts';
import type { WeightFormat } from '../weights/quantize.ts';
import { blockWeight, DecoderGraph, type GraphFeatures } from './decoder.ts';
import type { BuiltGraph } from './onnx.ts';

/**
 * Phi-3 (Abdin et al. 2024): the Llama block with fused projections. qkv_proj's outputs are
 * [q | k | v] and gate_up_proj's [gate | up]; a LoRA on either adapts the fused output, so the
 * split comes after it.
 */
export function buildPhi3(
  c: ModelConfig,
  weights: WeightSource,
  features?: GraphFeatures,
  format?: WeightFormat,
): BuiltGraph {
  const m = new DecoderGraph(c, weights, features, format);
  const g = m.g;
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const ff = c.intermediateSize;
  const embeddings = m.vocabTable('model.embed_tokens.weight');
  let h = m.embed(embeddings);
  for (let l = 0; l < c.numLayers; l++) {
    const name = (n: string) => blockWeight(c, l, n);
    const proj = (module: string, x: string) => m.hfProjection(l, module, x);

    const a = m.rmsNorm(h, m.w(name('input_layernorm.weight')));
    const [qs, ks, vs] = g.opN('Split', [proj('self_attn.qkv_proj', a), g.ints([q, kv, kv])], 3, { axis: 1 });
    h = g.add(h, proj('self_attn.o_proj', m.attention(l, m.rope(qs, c.numHeads), m.rope(ks, c.numKvHeads), vs)));

    const x = m.rmsNorm(h, m.w(name('post_attention_layernorm.weight')));
    const [gate, up] = g.opN('Split', [proj('mlp.gate_up_proj', x), g.ints([ff, ff])], 2, { axis: 1 });
    h = g.add(h, proj('mlp.down_proj', g.mul(up, m.activation(gate))));

    h = m.vlm(l, h);
  }
  const head = c.tiedEmbeddings ? embeddings : m.vocabTable('lm_head.weight');
  m.head(h, (x) => m.rmsNorm(x, m.w('model.norm.weight')), head);
  return m.encode();
}
