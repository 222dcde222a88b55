import type { ModelConfig } from '../model/config.ts';
import type { WeightSource } from '../weights/stored.ts';
import type { WeightFormat } from '../weights/quantize.ts';
import { buildGpt2 } from './gpt2.ts';
import { buildLlama } from './llama.ts';
import { buildPhi3 } from './phi3.ts';
import { buildGemma } from './gemma.ts';
import type { GraphFeatures } from './decoder.ts';
import type { BuiltGraph } from './onnx.ts';

/** One builder per architecture, as onnxruntime-genai's model builder does. */
const BUILDERS = {
  gpt2: buildGpt2,
  llama: buildLlama,
  mistral: buildLlama,
  qwen2: buildLlama,
  qwen3: buildLlama,
  phi3: buildPhi3,
  gemma: buildGemma,
  gemma2: buildGemma,
} as const;

export function buildDecoderGraph(
  c: ModelConfig,
  weights: WeightSource,
  features?: GraphFeatures,
  format?: WeightFormat,
): BuiltGraph {
  return BUILDERS[c.architecture](c, weights, features, format);
}
