import type { ModelConfig } from './config.ts';

/**
 * Where things live in each architecture's Hugging Face state dict. The loaders check weights
 * against these shapes, and the adapter validator checks LoRA targets and VLM blocks against them.
 */

/** A linear projection inside a block that a LoRA adapter may target. */
export interface LinearModule {
  /** Path inside the block, e.g. "attn.c_attn" or "self_attn.q_proj". */
  name: string;
  in: number;
  out: number;
}

export function layerPrefix(c: ModelConfig, layer: number): string {
  return c.architecture === 'gpt2' ? `transformer.h.${layer}.` : `model.layers.${layer}.`;
}

export function linearModules(c: ModelConfig): LinearModule[] {
  const d = c.hiddenSize;
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const ff = c.intermediateSize;
  if (c.architecture === 'gpt2') {
    return [
      { name: 'attn.c_attn', in: d, out: 3 * d },
      { name: 'attn.c_proj', in: d, out: d },
      { name: 'mlp.c_fc', in: d, out: ff },
      { name: 'mlp.c_proj', in: ff, out: d },
    ];
  }
  if (c.architecture === 'phi3') {
    // Fused: qkv_proj rows are [q | k | v], gate_up_proj rows [gate | up]; a LoRA B spans them all.
    return [
      { name: 'self_attn.qkv_proj', in: d, out: q + 2 * kv },
      { name: 'self_attn.o_proj', in: q, out: d },
      { name: 'mlp.gate_up_proj', in: d, out: 2 * ff },
      { name: 'mlp.down_proj', in: ff, out: d },
    ];
  }
  return [
    { name: 'self_attn.q_proj', in: d, out: q },
    { name: 'self_attn.k_proj', in: d, out: kv },
    { name: 'self_attn.v_proj', in: d, out: kv },
    { name: 'self_attn.o_proj', in: q, out: d },
    { name: 'mlp.gate_proj', in: d, out: ff },
    { name: 'mlp.up_proj', in: d, out: ff },
    { name: 'mlp.down_proj', in: ff, out: d },
  ];
}

/** Every weight the graph needs, with its shape (GPT-2 Conv1D weights are [in, out]). */
export function weightShapes(c: ModelConfig): Map<string, number[]> {
  const d = c.hiddenSize;
  const shapes = new Map<string, number[]>();
  if (c.architecture === 'gpt2') {
    shapes.set('transformer.wte.weight', [c.vocabSize, d]);
    shapes.set('transformer.wpe.weight', [c.maxPositions, d]);
    for (let i = 0; i < c.numLayers; i++) {
      const p = layerPrefix(c, i);
      for (const ln of ['ln_1', 'ln_2']) {
        shapes.set(`${p}${ln}.weight`, [d]);
        shapes.set(`${p}${ln}.bias`, [d]);
      }
      for (const m of linearModules(c)) {
        shapes.set(`${p}${m.name}.weight`, [m.in, m.out]);
        shapes.set(`${p}${m.name}.bias`, [m.out]);
      }
    }
    shapes.set('transformer.ln_f.weight', [d]);
    shapes.set('transformer.ln_f.bias', [d]);
    return shapes;
  }
  shapes.set('model.embed_tokens.weight', [c.vocabSize, d]);
  for (let i = 0; i < c.numLayers; i++) {
    const p = layerPrefix(c, i);
    shapes.set(`${p}input_layernorm.weight`, [d]);
    shapes.set(`${p}post_attention_layernorm.weight`, [d]);
    for (const m of linearModules(c)) shapes.set(`${p}${m.name}.weight`, [m.out, m.in]);
    for (const [name, dims] of requiredExtras(c)) shapes.set(`${p}${name}`, dims);
  }
  shapes.set('model.norm.weight', [d]);
  if (!c.tiedEmbeddings) shapes.set('lm_head.weight', [c.vocabSize, d]);
  return shapes;
}

/** Per-layer weights an architecture adds to the Llama layout (names inside the block). */
function requiredExtras(c: ModelConfig): Array<[string, number[]]> {
  const { hiddenSize: d, headDim: hd } = c;
  switch (c.architecture) {
    case 'qwen2':
      return [
        ['self_attn.q_proj.bias', [c.numHeads * hd]],
        ['self_attn.k_proj.bias', [c.numKvHeads * hd]],
        ['self_attn.v_proj.bias', [c.numKvHeads * hd]],
      ];
    case 'qwen3':
      return [
        ['self_attn.q_norm.weight', [hd]],
        ['self_attn.k_norm.weight', [hd]],
      ];
    case 'gemma2':
      return [
        ['pre_feedforward_layernorm.weight', [d]],
        ['post_feedforward_layernorm.weight', [d]],
      ];
    default:
      return [];
  }
}

/** Optional bias weights some Llama-family checkpoints carry (attention_bias / mlp_bias). */
export function optionalBiasShapes(c: ModelConfig): Map<string, number[]> {
  const shapes = new Map<string, number[]>();
  if (c.architecture === 'gpt2') return shapes;
  const required = weightShapes(c);
  for (let i = 0; i < c.numLayers; i++) {
    for (const m of linearModules(c)) {
      const name = `${layerPrefix(c, i)}${m.name}.bias`;
      if (!required.has(name)) shapes.set(name, [m.out]);
    }
  }
  return shapes;
}
