import type { ArchitectureModule } from './architecture.ts';
import { llamaBlock, llamaFamily } from './llama-family.ts';

/**
 * Llama (Touvron et al. 2023): RMSNorm, rotary positions (llama2.c's interleaved pairs or
 * Hugging Face's rotate-half), grouped-query attention, SwiGLU MLP, tied or separate head.
 * Projection weights stay in PyTorch's [out, in] layout; q/k/v and gate/up are each one product
 * over their stacked weights; biases are read when the checkpoint has them (attention_bias).
 */
export const llama: ArchitectureModule<'llama'> = llamaFamily({
  name: 'llama',
  hfClass: 'LlamaForCausalLM',
  defaults: { maxPositions: 2048, eps: 1e-6, tied: false, activation: 'silu' },
  block: llamaBlock(),
});
