import type { ModelConfig } from '../model/config.ts';
import type { Weights } from '../weights/tensor.ts';
import { buildGpt2 } from './gpt2.ts';
import { buildLlama } from './llama.ts';
import type { GraphFeatures } from './decoder.ts';

/** One builder per architecture, as onnxruntime-genai's model builder does. */
const BUILDERS = { gpt2: buildGpt2, llama: buildLlama } as const;

export function buildDecoderGraph(c: ModelConfig, weights: Weights, features?: GraphFeatures): Uint8Array {
  return BUILDERS[c.architecture](c, weights, features);
}
