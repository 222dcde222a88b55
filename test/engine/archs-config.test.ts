import { describe, expect, it } from 'vitest';
import { configFromHf, parameterCount } from '../../src/engine/model/config.ts';
import { linearModules, weightShapes } from '../../src/engine/model/layout.ts';
import { ropeFrequencies } from '../../src/engine/graph/rope.ts';

/** config.json of the Llama family, read with each transformers config class's defaults. */
const base = { vocab_size: 100, hidden_size: 64, intermediate_size: 96, num_hidden_layers: 4, num_attention_heads: 4 };
const read = (model_type: string, extra: Record<string, unknown> = {}) =>
  configFromHf({ model_type, ...base, ...extra });

describe('Llama-family configs', () => {
  it('absent fields take the config class defaults (head size, tied head, activation)', () => {
    expect(read('qwen3')).toMatchObject({ headDim: 128, tiedEmbeddings: false, activation: 'silu' });
    expect(read('qwen2')).toMatchObject({ headDim: 16, tiedEmbeddings: false });
    expect(read('gemma')).toMatchObject({ headDim: 256, tiedEmbeddings: true, activation: 'gelu_tanh' });
    expect(read('gemma', { hidden_act: 'gelu', hidden_activation: 'gelu_pytorch_tanh' }).activation).toBe('gelu_tanh');
    expect(read('gemma', { hidden_act: 'gelu' }).activation).toBe('gelu');
    expect(read('gemma2')).toMatchObject({
      attentionScale: 256 ** -0.5,
      attentionSoftcap: 50,
      finalSoftcap: 30,
      slidingWindow: { size: 4096, layers: [0, 2] },
    });
    const uncapped = read('gemma2', { attn_logit_softcapping: null, final_logit_softcapping: null });
    expect(uncapped.attentionSoftcap).toBeUndefined();
    expect(uncapped.finalSoftcap).toBeUndefined();
    expect(read('mistral').slidingWindow).toEqual({ size: 4096, layers: [0, 1, 2, 3] });
    expect(read('mistral', { sliding_window: null }).slidingWindow).toBeUndefined();
    expect(read('phi3', { sliding_window: 2047 }).slidingWindow?.size).toBe(2047);
  });

  it('sliding layers as transformers picks them; a window as long as the context is dropped', () => {
    expect(read('qwen2', { sliding_window: 8 }).slidingWindow).toBeUndefined(); // use_sliding_window false
    expect(read('qwen2', { sliding_window: 8, use_sliding_window: true, max_window_layers: 3 }).slidingWindow).toEqual({
      size: 8,
      layers: [3],
    });
    const types = ['full_attention', 'sliding_attention', 'full_attention', 'sliding_attention'];
    expect(read('gemma2', { layer_types: types, sliding_window: 16 }).slidingWindow).toEqual({
      size: 16,
      layers: [1, 3],
    });
    expect(read('mistral', { sliding_window: 4096, max_position_embeddings: 4096 }).slidingWindow).toBeUndefined();
  });

  it('RoPE: llama3 and linear rescale the frequencies (the fixture README values); dynamic caps the context', () => {
    const llama3 = read('llama', {
      num_attention_heads: 4,
      rope_theta: 500000,
      rope_scaling: {
        rope_type: 'llama3',
        factor: 8,
        low_freq_factor: 1,
        high_freq_factor: 4,
        original_max_position_embeddings: 64,
      },
    });
    const used = [1, 0.0794, 0.004701, 9.116e-4, 1.768e-4, 3.428e-5, 6.648e-6, 1.289e-6];
    [...ropeFrequencies(llama3)].forEach((f, j) => expect(f / used[j]).toBeCloseTo(1, 3));
    const plain = ropeFrequencies(read('llama'));
    const linear = ropeFrequencies(read('llama', { rope_scaling: { type: 'linear', factor: 4 } }));
    linear.forEach((f, j) => expect(f).toBeCloseTo(plain[j] / 4, 9));
    const dynamic = read('llama', {
      max_position_embeddings: 8192,
      rope_scaling: { type: 'dynamic', factor: 2, original_max_position_embeddings: 4096 },
    });
    expect(dynamic.maxPositions).toBe(4096);
    expect(dynamic.ropeScaling).toBeUndefined();
    const v5 = read('llama', { rope_parameters: { rope_type: 'linear', rope_theta: 1000, factor: 2 } });
    expect(v5).toMatchObject({ ropeTheta: 1000, ropeScaling: { type: 'linear', factor: 2 } });
  });

  it('Phi-3 fuses q/k/v and gate/up; Qwen2 requires q/k/v biases; parameters count every weight', () => {
    const phi3 = read('phi3', { num_key_value_heads: 2 });
    expect(linearModules(phi3).map((m) => [m.name, m.out])).toEqual([
      ['self_attn.qkv_proj', 64 + 2 * 32],
      ['self_attn.o_proj', 64],
      ['mlp.gate_up_proj', 2 * 96],
      ['mlp.down_proj', 64],
    ]);
    expect(weightShapes(read('qwen2')).get('model.layers.0.self_attn.k_proj.bias')).toEqual([64]);
    expect(weightShapes(read('qwen3')).get('model.layers.3.self_attn.q_norm.weight')).toEqual([128]);
    const gemma2 = read('gemma2', { head_dim: 16 });
    const total = [...weightShapes(gemma2).values()].reduce((n, d) => n + d.reduce((a, b) => a * b, 1), 0);
    expect(parameterCount(gemma2)).toBe(total);
  });

  const refusals: Array<[string, () => unknown, RegExp]> = [
    ['an unknown rope_scaling type', () => read('qwen2', { rope_scaling: { type: 'yarn', factor: 4 } }), /"yarn"/],
    ['Phi-3 longrope', () => read('phi3', { rope_scaling: { type: 'longrope' } }), /rope_scaling type "longrope"/],
    ['a partial rotary factor', () => read('phi3', { partial_rotary_factor: 0.75 }), /partial_rotary_factor 0.75/],
    ['an unknown activation', () => read('mistral', { hidden_act: 'relu' }), /hidden_act "relu"/],
    [
      'RoPE that differs per layer type',
      () =>
        read('gemma2', {
          rope_parameters: { full_attention: { rope_theta: 1e6 }, sliding_attention: { rope_theta: 1e4 } },
        }),
      /differ per layer type/,
    ],
    [
      'an unknown layer type',
      () => read('mistral', { layer_types: ['chunked_attention', 'a', 'b', 'c'] }),
      /layer type/,
    ],
    ['an unknown model', () => read('qwen2_moe'), /unsupported model \(model_type "qwen2_moe"/],
    ['a prototype name as model_type', () => read('constructor'), /unsupported model/],
  ];
  for (const [what, parse, message] of refusals) {
    it(`refuses ${what}, naming it`, () => expect(parse).toThrow(message));
  }
});
