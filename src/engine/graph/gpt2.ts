import type { ModelConfig } from '../model/config.ts';
import type { WeightSource } from '../weights/stored.ts';
import type { WeightFormat } from '../weights/quantize.ts';
import { blockWeight, DecoderGraph, type GraphFeatures } from './decoder.ts';
import type { BuiltGraph } from './onnx.ts';

/**
 * GPT-2 (Radford et al. 2019): learned positions, pre-LayerNorm blocks, tanh-GELU MLP, output
 * head tied to the token embeddings. Conv1D weights are stored [in, out]; c_attn is already the
 * one product of q, k and v. Each residual add and the LayerNorm after it are one node.
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
  const norm = (l: number, n: string) => ({
    weight: m.w(blockWeight(c, l, `${n}.weight`)),
    bias: m.w(blockWeight(c, l, `${n}.bias`)),
  });
  const wte = m.vocabTable('transformer.wte.weight');
  let h = m.embed(wte, m.w('transformer.wpe.weight'));
  let a = m.norm(h, norm(0, 'ln_1'));
  for (let l = 0; l < c.numLayers; l++) {
    const proj = (module: string, x: string) =>
      m.linear(l, module, x, blockWeight(c, l, `${module}.weight`), 'in_out', blockWeight(c, l, `${module}.bias`));

    const [q, k, v] = g.opN('Split', [proj('attn.c_attn', a), g.ints([d, d, d])], 3, { axis: 1 });
    const x = m.addNorm(h, proj('attn.c_proj', m.attention(l, q, k, v)), norm(l, 'ln_2'));

    const mlp = proj('mlp.c_proj', m.geluTanh(proj('mlp.c_fc', x.normed)));
    const end = m.endBlock(l, x.sum, mlp, l + 1 < c.numLayers ? norm(l + 1, 'ln_1') : undefined);
    h = end.h;
    a = end.normed ?? '';
  }
  m.head(h, (x) => m.layerNorm(x, m.w('transformer.ln_f.weight'), m.w('transformer.ln_f.bias')), wte);
  return m.encode();
}
