import type { ArchitectureModule } from './architecture.ts';
import { llamaBlock, llamaFamily } from './llama-family.ts';

/**
 * Qwen2 (Yang et al. 2024): the Llama block with q/k/v biases; with use_sliding_window, the
 * layers from max_window_layers on attend over a sliding window.
 */
export const qwen2: ArchitectureModule<'qwen2'> = llamaFamily({
  name: 'qwen2',
  hfClass: 'Qwen2ForCausalLM',
  defaults: { maxPositions: 32768, eps: 1e-6, tied: false, activation: 'silu' },
  slidingWindow: { optIn: true, layers: maxWindowLayers },
  extraWeights: (c) => [
    ['self_attn.q_proj.bias', [c.numHeads * c.headDim]],
    ['self_attn.k_proj.bias', [c.numKvHeads * c.headDim]],
    ['self_attn.v_proj.bias', [c.numKvHeads * c.headDim]],
  ],
  block: llamaBlock(),
});

/** Qwen's sliding layers: from max_window_layers (default 28) on. */
export function maxWindowLayers(layer: number, json: Record<string, unknown>): boolean {
  return layer >= (typeof json.max_window_layers === 'number' ? json.max_window_layers : 28);
}
