import type { ArchitectureModule } from './architecture.ts';
import { llamaBlock, llamaFamily } from './llama-family.ts';

/** Mistral (Jiang et al. 2023): the Llama block, attending over a sliding window in every layer. */
export const mistral: ArchitectureModule<'mistral'> = llamaFamily({
  name: 'mistral',
  hfClass: 'MistralForCausalLM',
  defaults: { maxPositions: 4096 * 32, eps: 1e-6, tied: false, activation: 'silu' },
  slidingWindow: { defaultSize: 4096 },
  block: llamaBlock(),
});
