import type { ModelConfig } from '../model/config.ts';
import type { GraphBuilder } from './onnx.ts';

/**
 * RoPE inverse frequencies in float32, as transformers computes them (modeling_rope_utils.py):
 * theta^(-2j/hd), then rescaled by rope_scaling "linear" (divided by the factor) or "llama3"
 * (long wavelengths divided by the factor, short ones kept, smoothed in between).
 */
export function ropeFrequencies(c: ModelConfig): Float32Array {
  const { headDim: hd, ropeTheta = 10000, ropeScaling: scaling } = c;
  const out = new Float32Array(hd / 2);
  for (let j = 0; j < hd / 2; j++) {
    const inv = Math.fround(1 / Math.fround(ropeTheta ** Math.fround((2 * j) / hd)));
    if (!scaling) out[j] = inv;
    else if (scaling.type === 'linear') out[j] = inv / scaling.factor;
    else {
      const { factor, lowFreqFactor: low, highFreqFactor: high, originalMaxPositions: old } = scaling;
      const wavelen = (2 * Math.PI) / inv;
      if (wavelen < old / high) out[j] = inv;
      else if (wavelen > old / low) out[j] = inv / factor;
      else {
        const smooth = (old / wavelen - low) / (high - low);
        out[j] = (1 - smooth) * (inv / factor) + smooth * inv;
      }
    }
  }
  return out;
}

/** The cos/sin caches [maxPositions, hd/2] that RotaryEmbedding reads, computed like PyTorch in float32. */
export function ropeTables(graph: GraphBuilder, c: ModelConfig): { cos: string; sin: string } {
  const { headDim: hd, maxPositions } = c;
  const half = hd / 2;
  const cos = new Float32Array(maxPositions * half);
  const sin = new Float32Array(maxPositions * half);
  const frequencies = ropeFrequencies(c);
  for (let j = 0; j < half; j++) {
    const inv = frequencies[j];
    for (let p = 0; p < maxPositions; p++) {
      const angle = Math.fround(p * inv);
      cos[p * half + j] = Math.cos(angle);
      sin[p * half + j] = Math.sin(angle);
    }
  }
  return {
    cos: graph.tensor('rope.cos', { dims: [maxPositions, half], data: cos }),
    sin: graph.tensor('rope.sin', { dims: [maxPositions, half], data: sin }),
  };
}
