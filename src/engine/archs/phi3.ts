import type { ArchitectureModule } from './architecture.ts';
import type { ModelConfig } from '../model/config.ts';
import type { LinearModule } from '../model/layout.ts';
import { llamaFamily } from './llama-family.ts';

/**
 * Phi-3 (Abdin et al. 2024): the Llama block with fused projections. qkv_proj's outputs are
 * [q | k | v] and gate_up_proj's [gate | up]; a LoRA on either adapts the fused output, so the
 * split comes after it.
 */
export const phi3: ArchitectureModule<'phi3'> = llamaFamily({
  name: 'phi3',
  hfClass: 'Phi3ForCausalLM',
  defaults: { maxPositions: 4096, eps: 1e-5, tied: false, activation: 'silu' },
  slidingWindow: {},
  linearModules,
  block(m, l, h, normed) {
    const g = m.graph;
    const { ff } = widths(m.config);
    const proj = (module: string, x: string) => m.projection(l, module, x);

    const attended = proj(
      'self_attn.o_proj',
      m.attentionStacked(l, proj('self_attn.qkv_proj', normed), (x) => m.rope(x)),
    );
    const x = m.addNorm(h, attended, {
      weight: m.weights.float32(m.blockWeight(l, 'post_attention_layernorm.weight')),
    });

    const [gate, up] = g.opN('Split', [proj('mlp.gate_up_proj', x.normed), g.ints([ff, ff])], 2, { axis: 1 });
    return { residual: x.sum, delta: proj('mlp.down_proj', g.mul(up, m.activation(gate))) };
  },
});

const widths = (c: ModelConfig) => ({
  q: c.numHeads * c.headDim,
  kv: c.numKvHeads * c.headDim,
  ff: c.intermediateSize,
});

/** Fused: qkv_proj rows are [q | k | v], gate_up_proj rows [gate | up]; a LoRA B spans them all. */
function linearModules(c: ModelConfig): LinearModule[] {
  const d = c.hiddenSize;
  const { q, kv, ff } = widths(c);
  return [
    { name: 'self_attn.qkv_proj', in: d, out: q + 2 * kv },
    { name: 'self_attn.o_proj', in: q, out: d },
    { name: 'mlp.gate_up_proj', in: d, out: 2 * ff },
    { name: 'mlp.down_proj', in: ff, out: d },
  ];
}
