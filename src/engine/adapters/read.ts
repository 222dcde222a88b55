import type { ModelConfig } from '../model/config.ts';
import { layerPrefix, linearModules } from '../model/layout.ts';
import { parseHeader, toFloat32, type SafetensorsHeader } from '../weights/safetensors.ts';
import { transpose } from '../weights/tensor.ts';
import { checkFiniteWeights } from './finite.ts';
import {
  AdapterFormatError,
  ADAPTER_CONFIG_FILE,
  describeLora,
  describeVlm,
  detectKind,
  LORA_WEIGHTS_FILE,
  VLM_WEIGHTS_FILE,
  type AdapterManifest,
} from './format.ts';

/**
 * One VLM adapter block, laid out as the adapter bank takes it, once, at load: downT [d, m] and
 * downB [m] carry the block's LayerNorm scale and shift, since (x*w + b) D^T = x (w D^T) + b D^T,
 * so the graph normalises without them; upT [m, d] (PyTorch stores down [m, d], up [d, m]).
 */
interface VlmLayer {
  downT: Float32Array;
  downB: Float32Array;
  upT: Float32Array;
  upB: Float32Array;
}

/** One LoRA-adapted projection as the bank takes it: aT = A^T [in, r], bT = B^T * scale [r, out]. */
export interface LoraModule {
  layer: number;
  module: string;
  rank: number;
  aT: Float32Array;
  bT: Float32Array;
}

interface AdapterBase {
  /** Caller's identity for the adapter (e.g. "name@3" or a sha256); rows name adapters by it. */
  id: string;
  manifest: AdapterManifest;
  /** Bytes the adapter's weights take in memory. */
  bytes: number;
}
export type Adapter =
  | (AdapterBase & {
      kind: 'vlm';
      bottleneck: number;
      layers: VlmLayer[];
      taskEmbeddings: Float32Array;
      taskTokens: string[];
    })
  | (AdapterBase & { kind: 'lora'; modules: LoraModule[] });

export interface AdapterFiles {
  /** Parsed adapter_config.json, if the adapter has one. */
  config?: Record<string, unknown>;
  /** File name -> contents. */
  files: Map<string, Uint8Array>;
}

/** Parses and validates an adapter from its files' bytes, ready for an adapter bank. */
export function readAdapter(id: string, input: AdapterFiles, base: ModelConfig): Adapter {
  const kind = detectKind(input.config, [...input.files.keys()]);
  const file = kind === 'vlm' ? VLM_WEIGHTS_FILE : LORA_WEIGHTS_FILE;
  const bytes = input.files.get(file);
  if (!bytes) throw new AdapterFormatError(`missing ${file}`);
  const header = parseHeader(bytes, bytes.length);
  checkFiniteWeights(header, bytes);
  /** A tensor as a fresh float32 array (ours to keep or change). */
  const tensor = (name: string) => {
    const t = header.tensors.get(name)!;
    return toFloat32(bytes.subarray(header.dataOffset + t.begin, header.dataOffset + t.end), t.dtype, name);
  };
  /** A tensor only read (transposed into a new array): an aligned F32 one is viewed in place, not copied. */
  const view = (name: string) => {
    const t = header.tensors.get(name)!;
    const at = bytes.byteOffset + header.dataOffset + t.begin;
    return t.dtype === 'F32' && at % 4 === 0 ? new Float32Array(bytes.buffer, at, (t.end - t.begin) / 4) : tensor(name);
  };
  if (kind === 'vlm') {
    const manifest = describeVlm(header, base, input.config);
    const m = manifest.bottleneck!;
    const d = base.hiddenSize;
    const layers = Array.from({ length: base.numLayers }, (_, i) => {
      const p = `${layerPrefix(base, i)}adapter_block.`;
      const [lnW, lnB, down, downB] = [
        view(`${p}ln.weight`),
        view(`${p}ln.bias`),
        view(`${p}project_down.weight`),
        tensor(`${p}project_down.bias`),
      ];
      for (let j = 0; j < m; j++) {
        let shift = 0;
        for (let i = 0; i < d; i++) shift += down[j * d + i] * lnB[i];
        downB[j] += shift;
      }
      return {
        downT: transpose(down, m, d, lnW),
        downB,
        upT: transpose(view(`${p}project_up.weight`), d, m),
        upB: tensor(`${p}project_up.bias`),
      };
    });
    const taskEmbeddings = manifest.taskTokens.length ? tensor('task_embeddings') : new Float32Array(0);
    return {
      id,
      kind,
      manifest,
      bytes: manifest.params * 4,
      bottleneck: manifest.bottleneck!,
      layers,
      taskEmbeddings,
      taskTokens: manifest.taskTokens,
    };
  }
  if (!input.config) throw new AdapterFormatError(`missing ${ADAPTER_CONFIG_FILE}`);
  const { modules: specs, ...manifest } = describeLora(header, base, input.config);
  const modules = specs.map((spec) => {
    const { in: fanIn, out } = linearModules(base).find((m) => m.name === spec.module)!;
    let b = view(spec.bName);
    // PEFT adapters are trained on Hugging Face layouts; a llama2.c base keeps interleaved RoPE pairs.
    if (
      base.ropeLayout === 'interleaved' &&
      (spec.module === 'self_attn.q_proj' || spec.module === 'self_attn.k_proj')
    ) {
      b = halfToInterleavedRows(b, spec.rank, base.headDim);
    }
    const bT = transpose(b, out, spec.rank);
    for (let i = 0; i < bT.length; i++) bT[i] *= spec.scale;
    return {
      layer: spec.layer,
      module: spec.module,
      rank: spec.rank,
      aT: transpose(view(spec.aName), spec.rank, fanIn),
      bT,
    };
  });
  return { id, kind, manifest, bytes: manifest.params * 4, modules };
}

/** Reorders output rows from rotate-half (HF) to interleaved (llama2.c) RoPE order, per head. */
function halfToInterleavedRows(w: Float32Array, cols: number, headDim: number): Float32Array {
  const out = new Float32Array(w.length);
  const rows = w.length / cols;
  const half = headDim / 2;
  for (let row = 0; row < rows; row++) {
    const head = Math.floor(row / headDim);
    const r = row % headDim;
    const part = r < half ? 0 : 1;
    const i = r % half;
    const dst = head * headDim + 2 * i + part;
    out.set(w.subarray(row * cols, (row + 1) * cols), dst * cols);
  }
  return out;
}

/** Reads just the manifest (no tensor data beyond the header). */
export function inspectAdapter(
  config: Record<string, unknown> | undefined,
  header: SafetensorsHeader,
  fileNames: string[],
  base: ModelConfig,
): AdapterManifest {
  const kind = detectKind(config, fileNames);
  if (kind === 'vlm') return describeVlm(header, base, config);
  if (!config) throw new AdapterFormatError(`missing ${ADAPTER_CONFIG_FILE}`);
  const { modules: _modules, ...manifest } = describeLora(header, base, config);
  return manifest;
}
