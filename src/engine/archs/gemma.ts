import type { DecoderGraph } from '../graph/decoder.ts';
import type { ArchitectureModule, DecoderSpec } from './architecture.ts';
import { llamaFamily, type LlamaFamilySpec } from './llama-family.ts';

/**
 * Gemma (Gemma Team 2024): the Llama block with embeddings scaled by sqrt(hidden) (a float32
 * constant), RMSNorm weights applied as (1 + w), a GELU-gated MLP and a tied head.
 */
export const gemma: ArchitectureModule<'gemma'> = llamaFamily({
  name: 'gemma',
  hfClass: 'GemmaForCausalLM',
  defaults: { maxPositions: 8192, eps: 1e-6, tied: true, headDim: 256, activation: 'gelu_tanh' },
  ...gemmaFamily(false),
});

/** What Gemma and Gemma 2 share; `sandwich`: Gemma 2's norms after attention and around the MLP. */
export function gemmaFamily(sandwich: boolean) {
  return {
    // Gemma's MLP reads hidden_activation (Google's configs keep an older "gelu" in hidden_act).
    activationField: 'hidden_activation',
    normWeight: (m: DecoderGraph, name: string) => m.weights.onePlus(name),
    embed: (m, table) => m.graph.mul(m.embed(table), m.graph.scalar(Math.sqrt(m.config.hiddenSize))),
    block: gemmaBlock(sandwich),
  } satisfies Partial<LlamaFamilySpec<'gemma'>>;
}

function gemmaBlock(sandwich: boolean): DecoderSpec['block'] {
  return (m, l, h, normed) => {
    const norm = (n: string) => ({ weight: m.weights.onePlus(m.blockWeight(l, `${n}.weight`)) });
    const proj = (module: string, x: string) => m.projection(l, module, x);

    const attended = proj(
      'self_attn.o_proj',
      m.qkvAttention(l, normed, (x) => m.rope(x)),
    );
    // In Gemma 2, post_attention_layernorm normalises the attention output; in Gemma it is the pre-MLP norm.
    const x = sandwich
      ? m.addNorm(h, m.norm(attended, norm('post_attention_layernorm')), norm('pre_feedforward_layernorm'))
      : m.addNorm(h, attended, norm('post_attention_layernorm'));

    const [gate, up] = m.fusedProjections(l, ['mlp.gate_proj', 'mlp.up_proj'], x.normed);
    const mlp = proj('mlp.down_proj', m.graph.mul(m.activation(gate), up));
    return { residual: x.sum, delta: sandwich ? m.norm(mlp, norm('post_feedforward_layernorm')) : mlp };
  };
}
