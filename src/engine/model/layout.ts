import type { ModelConfig } from './config.ts';
import { architectureOf } from '../archs/index.ts';

/**
 * Where things live in each architecture's Hugging Face state dict, as its module declares
 * (archs/). The loaders check weights against these shapes, and the adapter validator checks
 * LoRA targets and VLM blocks against them.
 */

/** A linear projection inside a block that a LoRA adapter may target. */
export interface LinearModule {
  /** Path inside the block, e.g. "attn.c_attn" or "self_attn.q_proj". */
  name: string;
  in: number;
  out: number;
}

export function layerPrefix(c: ModelConfig, layer: number): string {
  return architectureOf(c).layerPrefix(layer);
}

export function linearModules(c: ModelConfig): LinearModule[] {
  return architectureOf(c).linearModules(c);
}

/** Every weight the graph needs, with its shape (GPT-2 Conv1D weights are [in, out]). */
export function weightShapes(c: ModelConfig): Map<string, number[]> {
  return architectureOf(c).weightShapes(c);
}

/** Optional biases of the projections (Llama-family attention_bias / mlp_bias): those not required. */
export function optionalBiasShapes(c: ModelConfig): Map<string, number[]> {
  const shapes = new Map<string, number[]>();
  const required = weightShapes(c);
  for (let i = 0; i < c.numLayers; i++) {
    for (const m of linearModules(c)) {
      const name = `${layerPrefix(c, i)}${m.name}.bias`;
      if (!required.has(name)) shapes.set(name, [m.out]);
    }
  }
  return shapes;
}
