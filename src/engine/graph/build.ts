import type { ModelConfig } from '../model/config.ts';
import type { WeightSource } from '../weights/stored.ts';
import type { WeightFormat } from '../weights/quantize.ts';
import { architectureOf } from '../archs/index.ts';
import { DecoderGraph } from './decoder.ts';
import type { GraphFeatures } from './adapters.ts';
import type { BuiltGraph } from './onnx.ts';
import type { KvPlacement } from './io.ts';

/**
 * The decoder graph of a model, as onnxruntime-genai's model builder makes it: the shared
 * prologue and head here, each block as its architecture's module declares (archs/).
 */
export function buildDecoderGraph(
  c: ModelConfig,
  weights: WeightSource,
  features?: GraphFeatures,
  format?: WeightFormat,
  kv?: KvPlacement,
): BuiltGraph {
  const arch = architectureOf(c).decoder;
  const m = new DecoderGraph(c, weights, features, format, kv);
  const embeddings = m.weights.vocabTable(arch.embeddings);
  let h = arch.embed(m, embeddings);
  let normed = m.norm(h, arch.inputNorm(m, 0));
  for (let l = 0; l < c.numLayers; l++) {
    const { residual, delta } = arch.block(m, l, h, normed);
    const end = m.endBlock(l, residual, delta, l + 1 < c.numLayers ? arch.inputNorm(m, l + 1) : undefined);
    h = end.h;
    normed = end.normed ?? ''; // '' after the last block, whose stream the head normalises
  }
  const head = c.tiedEmbeddings ? embeddings : m.weights.vocabTable('lm_head.weight');
  m.head(h, (x) => m.norm(x, arch.finalNorm(m)), head);
  return m.encode();
}
