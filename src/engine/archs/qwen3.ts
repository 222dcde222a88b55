import type { ArchitectureModule } from './architecture.ts';
import { llamaBlock, llamaFamily } from './llama-family.ts';
import { maxWindowLayers } from './qwen2.ts';

/**
 * Qwen3 (Yang et al. 2025): the Llama block without q/k/v biases, with an RMSNorm of each head of
 * the queries and keys (q_norm, k_norm) before rotary; Qwen2's sliding-window rule.
 */
export const qwen3: ArchitectureModule<'qwen3'> = llamaFamily({
  name: 'qwen3',
  hfClass: 'Qwen3ForCausalLM',
  defaults: { maxPositions: 32768, eps: 1e-6, tied: false, headDim: 128, activation: 'silu' },
  slidingWindow: { optIn: true, layers: maxWindowLayers },
  extraWeights: (c) => [
    ['self_attn.q_norm.weight', [c.headDim]],
    ['self_attn.k_norm.weight', [c.headDim]],
  ],
  block: llamaBlock((m, l, x, of) => m.rmsNorm(x, m.weights.float32(m.blockWeight(l, `self_attn.${of}_norm.weight`)))),
});
