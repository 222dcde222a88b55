import { sql } from 'drizzle-orm';
import type { ModelConfig } from '../../src/engine/model/config.ts';
import { encodeSafetensors } from '../../src/engine/weights/safetensors.ts';
import type { TestRegistry } from './registry.ts';

/** Synthetic bases and adapters (no fixture needed), publishing helpers, and a registry snapshot. */

export function toyConfig(overrides: Partial<ModelConfig> = {}): ModelConfig {
  return {
    architecture: 'gpt2',
    vocabSize: 64,
    hiddenSize: 16,
    numLayers: 2,
    numHeads: 2,
    numKvHeads: 2,
    headDim: 8,
    intermediateSize: 64,
    maxPositions: 32,
    normEps: 1e-5,
    tiedEmbeddings: true,
    ...overrides,
  };
}

/** Registers `name` (a new version of it) with `config`, as metadata; returns its version. */
export async function registerBase(
  reg: TestRegistry,
  name: string,
  config: ModelConfig = toyConfig(),
): Promise<number> {
  const res = await reg.fetch(`/v1/models/${name}/versions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      architecture: config.architecture,
      config,
      files: [{ name: 'model.safetensors', sha256: 'a'.repeat(64), bytes: 1234 }],
    }),
  });
  if (res.status !== 201) throw new Error(`registerBase: ${res.status} ${await res.text()}`);
  return (await res.json()).version;
}

function values(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let x = seed * 2654435761 + 1;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = (x / 2 ** 32 - 0.5) * 0.1;
  }
  return out;
}

export type AdapterFiles = Array<{ name: string; bytes: Uint8Array }>;

/** A VLM adapter (VGLM layout) for a gpt2 or llama `config`. `seed` changes the weights. */
export function vlmAdapter(
  config: ModelConfig,
  options: {
    bottleneck?: number;
    taskTokens?: string[];
    seed?: number;
    /** what the file claims, if not taskTokens */ declaredTaskTokens?: string[];
  } = {},
): AdapterFiles {
  const d = config.hiddenSize;
  const m = options.bottleneck ?? 4;
  const tokens = options.taskTokens ?? ['<|toy|>'];
  const prefix = (i: number) => (config.architecture === 'gpt2' ? `transformer.h.${i}.` : `model.layers.${i}.`);
  const seed = options.seed ?? 1;
  const tensors: Array<{ name: string; shape: number[]; data: Float32Array }> = [];
  for (let i = 0; i < config.numLayers; i++) {
    const p = `${prefix(i)}adapter_block.`;
    tensors.push(
      { name: `${p}ln.weight`, shape: [d], data: values(d, seed + i) },
      { name: `${p}ln.bias`, shape: [d], data: values(d, seed + i + 1) },
      { name: `${p}project_down.weight`, shape: [m, d], data: values(m * d, seed + i + 2) },
      { name: `${p}project_down.bias`, shape: [m], data: values(m, seed + i + 3) },
      { name: `${p}project_up.weight`, shape: [d, m], data: values(d * m, seed + i + 4) },
      { name: `${p}project_up.bias`, shape: [d], data: values(d, seed + i + 5) },
    );
  }
  if (tokens.length)
    tensors.push({ name: 'task_embeddings', shape: [tokens.length, d], data: values(tokens.length * d, seed + 99) });
  const declared = options.declaredTaskTokens ?? tokens;
  const metadata = { format: 'vglm', bottleneck: String(m), task_tokens: JSON.stringify(declared) };
  const config_ = { format: 'vglm', bottleneck: m, task_tokens: declared };
  return [
    { name: 'adapter_config.json', bytes: new TextEncoder().encode(JSON.stringify(config_)) },
    { name: 'adapter.safetensors', bytes: encodeSafetensors(tensors, metadata) },
  ];
}

/** A PEFT LoRA adapter on gpt2's attn.c_attn. */
export function loraAdapter(config: ModelConfig, options: { rank?: number; seed?: number } = {}): AdapterFiles {
  const d = config.hiddenSize;
  const r = options.rank ?? 2;
  const tensors = [];
  for (let i = 0; i < config.numLayers; i++) {
    const p = `base_model.model.transformer.h.${i}.attn.c_attn.`;
    tensors.push(
      { name: `${p}lora_A.weight`, shape: [r, d], data: values(r * d, (options.seed ?? 1) + i) },
      { name: `${p}lora_B.weight`, shape: [3 * d, r], data: values(3 * d * r, (options.seed ?? 1) + i + 7) },
    );
  }
  const cfg = {
    peft_type: 'LORA',
    task_type: 'CAUSAL_LM',
    r,
    lora_alpha: 2 * r,
    target_modules: ['c_attn'],
    fan_in_fan_out: true,
    bias: 'none',
  };
  return [
    { name: 'adapter_config.json', bytes: new TextEncoder().encode(JSON.stringify(cfg)) },
    { name: 'adapter_model.safetensors', bytes: encodeSafetensors(tensors) },
  ];
}

/** Builds the publish form: fields first, then files, in the order given. */
export function publishForm(fields: Record<string, string>, files: AdapterFiles): FormData {
  const form = new FormData();
  for (const [k, v] of Object.entries(fields)) form.append(k, v);
  for (const f of files) form.append('file', new Blob([f.bytes as Uint8Array<ArrayBuffer>]), f.name);
  return form;
}

export function publish(
  reg: TestRegistry,
  adapter: string,
  fields: Record<string, string>,
  files: AdapterFiles,
  key?: string | null,
): Promise<Response> {
  return reg.fetch(`/v1/adapters/${adapter}/versions`, { method: 'POST', body: publishForm(fields, files), key });
}

/** Publishes and returns the 201 body, failing loudly otherwise. */
export async function published(
  reg: TestRegistry,
  adapter: string,
  fields: Record<string, string>,
  files: AdapterFiles,
  key?: string | null,
) {
  const res = await publish(reg, adapter, fields, files, key);
  const body = await res.json();
  if (res.status !== 201) throw new Error(`publish ${adapter}: ${res.status} ${JSON.stringify(body)}`);
  return body as {
    adapter: string;
    version: number;
    sha256: string;
    behavior_sha256: string;
    bytes: number;
    params: number;
    params_pct_of_base: number;
    base: string;
    files: Array<{ name: string; sha256: string; bytes: number }>;
  };
}

const TABLES = [
  'tenants',
  'api_keys',
  'base_models',
  'base_model_versions',
  'base_model_files',
  'adapters',
  'adapter_versions',
  'adapter_files',
  'aliases',
  'alias_history',
  'experiments',
  'experiment_arms',
  'events',
];

/** Row counts of every table, every blob, and partial uploads: equal snapshots = nothing changed. */
export async function snapshot(reg: TestRegistry) {
  const [counts] = await reg.registry.db.all<Record<string, number>>(
    sql.raw(`select ${TABLES.map((t) => `(select count(*) from ${t}) as ${t}`).join(', ')}`),
  );
  const rows = Object.fromEntries(TABLES.map((t) => [t, Number(counts[t])]));
  const blobs: string[] = [];
  for await (const b of reg.blobs.list()) blobs.push(b.sha256);
  return { rows, blobs: blobs.sort(), partials: await reg.partials() };
}

export async function errorOf(
  res: Response,
): Promise<{ status: number; code: string | null; message: string; type: string }> {
  const text = await res.text();
  let body: { error?: { code: string | null; message: string; type: string } };
  try {
    body = JSON.parse(text);
  } catch {
    throw new Error(
      `expected a JSON error, got ${res.status} ${res.headers.get('content-type')}: ${text.slice(0, 200)}`,
    );
  }
  if (!body.error || typeof body.error.message !== 'string')
    throw new Error(`not an OpenAI-shaped error: ${text.slice(0, 200)}`);
  return { status: res.status, code: body.error.code, message: body.error.message, type: body.error.type };
}
