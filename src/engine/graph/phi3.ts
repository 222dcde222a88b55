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
  const norm = (l: number, n: string) => ({ weight: m.w(blockWeight(c, l, `${n}.weight`)) });
  const embeddings = m.vocabTable('model.embed_tokens.weight');
  let h = m.embed(embeddings);
  let a = m.norm(h, norm(0, 'input_layernorm'));
  for (let l = 0; l < c.numLayers; l++) {
    const proj = (module: string, x: string) => m.hfProjection(l, module, x);

    const [qs, ks, vs] = g.opN('Split', [proj('self_attn.qkv_proj', a), g.ints([q, kv, kv])], 3, { axis: 1 });
    const attended = proj(
      'self_attn.o_proj',
      m.attention(l, qs, ks, vs, (x) => m.rope(x)),
    );
    const x = m.addNorm(h, attended, norm(l, 'post_attention_layernorm'));

    const [gate, up] = g.opN('Split', [proj('mlp.gate_up_proj', x.normed), g.ints([ff, ff])], 2, { axis: 1 });
    const mlp = proj('mlp.down_proj', g.mul(up, m.activation(gate)));
    const end = m.endBlock(l, x.sum, mlp, l + 1 < c.numLayers ? norm(l + 1, 'input_layernorm') : undefined);
    h = end.h;
    a = end.normed ?? '';
  }
  const head = c.tiedEmbeddings ? embeddings : m.vocabTable('lm_head.weight');
  m.head(h, (x) => m.rmsNorm(x, m.w('model.norm.weight')), head);
  return m.encode();
}
