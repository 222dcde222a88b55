import type { ArchitectureModule } from './architecture.ts';
import { gemmaFamily } from './gemma.ts';
import { llamaFamily, softcap } from './llama-family.ts';
import { ModelFormatError } from '../model/config-json.ts';

/**
 * Gemma 2 (Gemma Team 2024): Gemma with a norm after attention and around the MLP,
 * query_pre_attn_scalar, soft-capped attention scores and logits, and sliding-window attention
 * in the even layers (the last three are config-driven, in graph/decoder.ts).
 */
export const gemma2: ArchitectureModule<'gemma2'> = llamaFamily({
  name: 'gemma2',
  hfClass: 'Gemma2ForCausalLM',
  defaults: { maxPositions: 8192, eps: 1e-6, tied: true, headDim: 256, activation: 'gelu_tanh' },
  slidingWindow: { defaultSize: 4096, layers: (layer) => layer % 2 === 0 },
  extraWeights: (c) => [
    ['pre_feedforward_layernorm.weight', [c.hiddenSize]],
    ['post_feedforward_layernorm.weight', [c.hiddenSize]],
  ],
  readConfig(json, config) {
    const scalar = json.query_pre_attn_scalar ?? 256;
    if (typeof scalar !== 'number' || !(scalar > 0))
      throw new ModelFormatError(`config.json: "query_pre_attn_scalar" must be a positive number`);
    config.attentionScale = scalar ** -0.5;
    const attnCap = softcap(json, 'attn_logit_softcapping', 50);
    const finalCap = softcap(json, 'final_logit_softcapping', 30);
    if (attnCap !== undefined) config.attentionSoftcap = attnCap;
    if (finalCap !== undefined) config.finalSoftcap = finalCap;
  },
  ...gemmaFamily(true),
});
