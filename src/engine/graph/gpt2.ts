import type { ModelConfig } from '../model/config.ts';
import type { WeightSource } from '../weights/stored.ts';
import type { WeightFormat } from '../weights/quantize.ts';
import { blockWeight, DecoderGraph, type GraphFeatures } from './decoder.ts';
import type { BuiltGraph } from './onnx.ts';

/**
 * GPT-2 (Radford et al. 2019): learned positions, pre-LayerNorm blocks, tanh-GELU MLP, output
 * head tied to the token embeddings. Conv1D weights are stored [in, out].
 */
export function buildGpt2(
  c: ModelConfig,
  weights: WeightSource,
  features?: GraphFeatures,
  format?: WeightFormat,
): BuiltGraph {
  const m = new DecoderGraph(c, weights, features, format);
  const g = m.g;
  const d = c.hiddenSize;
  const wte = m.vocabTable('transformer.wte.weight');
  let h = m.embed(wte, m.w('transformer.wpe.weight'));
  for (let l = 0; l < c.numLayers; l++) {
    const w = (name: string) => m.w(blockWeight(c, l, name));
    const proj = (module: string, x: string) =>
      m.linear(l, module, x, blockWeight(c, l, `${module}.weight`), 'in_out', blockWeight(c, l, `${module}.bias`));

    const qkv = proj('attn.c_attn', m.layerNorm(h, w('ln_1.weight'), w('ln_1.bias')));
    const [q, k, v] = g.opN('Split', [qkv, g.ints([d, d, d])], 3, { axis: 1 });
    h = g.add(h, proj('attn.c_proj', m.attention(l, q, k, v)));

    const up = proj('mlp.c_fc', m.layerNorm(h, w('ln_2.weight'), w('ln_2.bias')));
    h = g.add(h, proj('mlp.c_proj', m.geluTanh(up)));

    h = m.vlm(l, h);
  }
  m.head(h, (x) => m.layerNorm(x, m.w('transformer.ln_f.weight'), m.w('transformer.ln_f.bias')), wte);
  return m.encode();
}
