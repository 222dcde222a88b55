import type { ModelConfig } from '../model/config.ts';
import type { WeightSource } from '../weights/stored.ts';
import type { WeightFormat } from '../weights/quantize.ts';
import { buildGpt2 } from './gpt2.ts';
import { buildLlama } from './llama.ts';
import type { GraphFeatures } from './decoder.ts';
import type { EncodedGraph } from './onnx.ts';

/** One builder per architecture, as onnxruntime-genai's model builder does. */
const BUILDERS = { gpt2: buildGpt2, llama: buildLlama } as const;

export function buildDecoderGraph(
  c: ModelConfig,
  weights: WeightSource,
  features?: GraphFeatures,
  format?: WeightFormat,
): EncodedGraph {
  return BUILDERS[c.architecture](c, weights, features, format);
}
