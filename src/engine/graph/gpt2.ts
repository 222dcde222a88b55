import type { ModelConfig } from '../model/config.ts';
import { transpose2d, type Weights } from '../weights/tensor.ts';
import { blockWeight, DecoderGraph, type GraphFeatures } from './decoder.ts';

/**
 * GPT-2 (Radford et al. 2019): learned positions, pre-LayerNorm blocks, tanh-GELU MLP, output
 * head tied to the token embeddings. Conv1D weights are already [in, out].
 */
export function buildGpt2(c: ModelConfig, weights: Weights, features?: GraphFeatures): Uint8Array {
  const m = new DecoderGraph(c, weights, features);
  const g = m.g;
  const d = c.hiddenSize;
  const wteT = m.w('transformer.wte.weight', transpose2d); // [d, V]: see DecoderGraph.head
  let h = m.embed(wteT, m.w('transformer.wpe.weight'));
  for (let l = 0; l < c.numLayers; l++) {
    const w = (name: string) => m.w(blockWeight(c, l, name));
    const proj = (module: string, x: string) => m.linear(l, module, x, w(`${module}.weight`), w(`${module}.bias`));

    const qkv = proj('attn.c_attn', m.layerNorm(h, w('ln_1.weight'), w('ln_1.bias')));
    const [q, k, v] = g.opN('Split', [qkv, g.ints([d, d, d])], 3, { axis: 1 });
    h = g.add(h, proj('attn.c_proj', m.attention(l, q, k, v)));

    const up = proj('mlp.c_fc', m.layerNorm(h, w('ln_2.weight'), w('ln_2.bias')));
    h = g.add(h, proj('mlp.c_proj', m.geluTanh(up)));

    h = m.vlm(l, h);
  }
  m.head(h, (x) => m.layerNorm(x, m.w('transformer.ln_f.weight'), m.w('transformer.ln_f.bias')), wteT);
  return m.encode();
}
