import type { ModelConfig } from '../model/config.ts';
import { layerPrefix, linearModules } from '../model/layout.ts';
import type { SafetensorsHeader, TensorInfo } from '../weights/safetensors.ts';

/**
 * The two adapter formats, described and validated against a base model from their config and
 * safetensors header alone (no tensor data): the registry runs this inside a Worker on an
 * upload, the engine before it reads the tensors.
 *
 * - VLM (Lin et al. 2020, zlinao/VGLM): after every block `x + up(ReLU(down(LayerNorm(x))))`, plus
 *   task-token embeddings appended after the base vocabulary (also rows of the tied head).
 * - LoRA in the Hugging Face PEFT format: `y = x W^T + (x A^T B^T) * alpha / r` on target modules.
 */
export type AdapterKind = 'vlm' | 'lora';

export const VLM_WEIGHTS_FILE = 'adapter.safetensors';
export const LORA_WEIGHTS_FILE = 'adapter_model.safetensors';
export const ADAPTER_CONFIG_FILE = 'adapter_config.json';
/** The VGLM code uses nn.LayerNorm's default epsilon. */
export const VLM_LAYER_NORM_EPS = 1e-5;

export interface AdapterManifest {
  kind: AdapterKind;
  /** VLM bottleneck size. */
  bottleneck?: number;
  /** LoRA rank (the largest, when rank_pattern varies it). */
  rank?: number;
  /** Modules the adapter changes, as paths inside a block ("attn.c_attn", "adapter_block"). */
  targetModules: string[];
  taskTokens: string[];
  /** Trainable parameters the adapter adds. */
  params: number;
  /** Name of the file holding the weights. */
  weightsFile: string;
  /** The base model named by the adapter itself, if any (informational). */
  baseModel?: string;
}

export interface LoraModuleSpec {
  layer: number;
  module: string;
  rank: number;
  scale: number;
  aName: string;
  bName: string;
}

/**
 * Bounds on LoRA hyperparameters: far beyond any trained adapter's (alpha 8-128, r 4-256, a scale
 * alpha/r near 1), short of values that overflow activations or only make sense as an attack.
 */
const LORA_LIMITS = { maxRank: 4096, maxAlpha: 10_000, maxScale: 1_000 };

export class AdapterFormatError extends Error {
  override name = 'AdapterFormatError';
}

/** Which format a folder's files are in, from adapter_config.json (if any) and the file names. */
export function detectKind(config: Record<string, unknown> | undefined, files: readonly string[]): AdapterKind {
  if (config?.peft_type !== undefined) {
    if (config.peft_type !== 'LORA')
      throw new AdapterFormatError(`PEFT type ${JSON.stringify(config.peft_type)} is not supported (only LORA)`);
    return 'lora';
  }
  if (config?.format === 'vglm' || config?.format === 'vlm' || files.includes(VLM_WEIGHTS_FILE)) return 'vlm';
  if (files.includes(LORA_WEIGHTS_FILE))
    throw new AdapterFormatError(
      `${ADAPTER_CONFIG_FILE} with "peft_type": "LORA" is required next to ${LORA_WEIGHTS_FILE}`,
    );
  throw new AdapterFormatError(
    `not an adapter: expected ${VLM_WEIGHTS_FILE} (VLM) or ${ADAPTER_CONFIG_FILE} + ${LORA_WEIGHTS_FILE} (PEFT LoRA)`,
  );
}

/** Validates a VLM adapter against `base`. */
export function describeVlm(
  header: SafetensorsHeader,
  base: ModelConfig,
  config: Record<string, unknown> = {},
): AdapterManifest {
  const meta = header.metadata;
  const d = base.hiddenSize;
  const taskTokens = parseTaskTokens(meta.task_tokens ?? config.task_tokens);
  const downShape = header.tensors.get(`${layerPrefix(base, 0)}adapter_block.project_down.weight`)?.shape;
  if (!downShape)
    throw new AdapterFormatError(
      `missing ${layerPrefix(base, 0)}adapter_block.project_down.weight ` +
        `(is this adapter for a ${base.architecture} base?)`,
    );
  const m = downShape[0];
  const declared = meta.bottleneck ?? config.bottleneck;
  if (declared !== undefined && Number(declared) !== m) {
    throw new AdapterFormatError(`bottleneck is declared as ${declared} but project_down has ${m} rows`);
  }
  const eps = config.layer_norm_eps;
  if (eps !== undefined && Math.abs(Number(eps) - VLM_LAYER_NORM_EPS) > 1e-9) {
    throw new AdapterFormatError(`layer_norm_eps ${eps} is not supported (VLM adapters use ${VLM_LAYER_NORM_EPS})`);
  }
  const expected = new Map<string, number[]>();
  for (let i = 0; i < base.numLayers; i++) {
    const p = `${layerPrefix(base, i)}adapter_block.`;
    expected.set(`${p}ln.weight`, [d]);
    expected.set(`${p}ln.bias`, [d]);
    expected.set(`${p}project_down.weight`, [m, d]);
    expected.set(`${p}project_down.bias`, [m]);
    expected.set(`${p}project_up.weight`, [d, m]);
    expected.set(`${p}project_up.bias`, [d]);
  }
  if (taskTokens.length || header.tensors.has('task_embeddings'))
    expected.set('task_embeddings', [taskTokens.length, d]);
  checkTensors(header.tensors, expected);
  return {
    kind: 'vlm',
    bottleneck: m,
    targetModules: ['adapter_block'],
    taskTokens,
    params: countParams(header.tensors),
    weightsFile: VLM_WEIGHTS_FILE,
    baseModel: str(meta.base_model ?? config.base_model),
  };
}

/** Validates a PEFT LoRA adapter against `base`; also returns each adapted module's rank and scale. */
export function describeLora(
  header: SafetensorsHeader,
  base: ModelConfig,
  config: Record<string, unknown>,
): AdapterManifest & { modules: LoraModuleSpec[] } {
  if (config.use_dora) throw new AdapterFormatError('DoRA adapters (use_dora) are not supported');
  if (config.bias !== undefined && config.bias !== 'none')
    throw new AdapterFormatError(`LoRA bias "${String(config.bias)}" is not supported (only "none")`);
  if (Array.isArray(config.modules_to_save) && config.modules_to_save.length) {
    throw new AdapterFormatError(`modules_to_save (${config.modules_to_save.join(', ')}) is not supported`);
  }
  const r = Number(config.r);
  const alpha = Number(config.lora_alpha ?? r);
  if (!Number.isInteger(r) || r <= 0 || r > LORA_LIMITS.maxRank) {
    throw new AdapterFormatError(
      `adapter_config.json: r must be an integer from 1 to ${LORA_LIMITS.maxRank} (got ${JSON.stringify(config.r)})`,
    );
  }
  checkAlpha(alpha, 'lora_alpha', config.lora_alpha);
  const dropout = config.lora_dropout;
  if (dropout != null && (typeof dropout !== 'number' || !(dropout >= 0 && dropout < 1)))
    throw new AdapterFormatError(
      `adapter_config.json: lora_dropout must be in [0, 1) (got ${JSON.stringify(dropout)})`,
    );
  const rslora = config.use_rslora === true;
  const alphaPattern = checkedPatterns(config.alpha_pattern, 'alpha_pattern');
  for (const [key, value] of Object.entries(alphaPattern)) checkAlpha(value, `alpha_pattern["${key}"]`, value);
  checkedPatterns(config.rank_pattern, 'rank_pattern'); // ranks come from the tensors; the keys must still be sane
  const known = new Map(linearModules(base).map((mod) => [mod.name, mod]));
  const keyPattern =
    /^base_model\.model\.(?:transformer\.h|model\.layers)\.(\d+)\.(.+)\.lora_([AB])(?:\.default)?\.weight$/;
  const pairs = new Map<string, { layer: number; module: string; a?: TensorInfo; b?: TensorInfo }>();
  for (const t of header.tensors.values()) {
    const match = keyPattern.exec(t.name);
    if (!match)
      throw new AdapterFormatError(
        `unexpected tensor "${t.name}" (not a LoRA A/B weight of a ${base.architecture} block)`,
      );
    const [, layerText, module, which] = match;
    const layer = Number(layerText);
    if (layer >= base.numLayers)
      throw new AdapterFormatError(`tensor "${t.name}": layer ${layer} but the base has ${base.numLayers}`);
    if (!known.has(module)) {
      throw new AdapterFormatError(
        `tensor "${t.name}": module "${module}" cannot be adapted (supported: ${[...known.keys()].join(', ')})`,
      );
    }
    const key = `${layer}:${module}`;
    const pair = pairs.get(key) ?? { layer, module };
    pair[which === 'A' ? 'a' : 'b'] = t;
    pairs.set(key, pair);
  }
  if (!pairs.size) throw new AdapterFormatError('the adapter has no LoRA weights');
  const modules: LoraModuleSpec[] = [];
  for (const { layer, module, a, b } of pairs.values()) {
    const where = `layer ${layer} ${module}`;
    if (!a || !b) throw new AdapterFormatError(`${where}: lora_${a ? 'B' : 'A'} is missing`);
    const spec = known.get(module)!;
    const rank = a.shape[0];
    if (a.shape.length !== 2 || a.shape[1] !== spec.in)
      throw new AdapterFormatError(`${where}: lora_A has shape [${a.shape}], expected [r, ${spec.in}]`);
    if (b.shape.length !== 2 || b.shape[0] !== spec.out || b.shape[1] !== rank) {
      throw new AdapterFormatError(`${where}: lora_B has shape [${b.shape}], expected [${spec.out}, ${rank}]`);
    }
    if (rank === 0) throw new AdapterFormatError(`${where}: rank 0`);
    if (rank > LORA_LIMITS.maxRank)
      throw new AdapterFormatError(`${where}: rank ${rank} is above ${LORA_LIMITS.maxRank}`);
    // PEFT's alpha_pattern: the first key that matches the end of the module's full name.
    const fullName = `${layerPrefix(base, layer)}${module}`;
    const pattern = Object.keys(alphaPattern).find((p) => matchesModule(p, fullName));
    const moduleAlpha = pattern === undefined ? alpha : Number(alphaPattern[pattern]);
    const scale = rslora ? moduleAlpha / Math.sqrt(rank) : moduleAlpha / rank;
    if (Math.abs(scale) > LORA_LIMITS.maxScale) {
      throw new AdapterFormatError(
        `${where}: scale ${rslora ? 'lora_alpha/sqrt(r)' : 'lora_alpha/r'} = ${scale} is beyond ` +
          `±${LORA_LIMITS.maxScale}`,
      );
    }
    modules.push({ layer, module, rank, scale, aName: a.name, bName: b.name });
  }
  for (const t of header.tensors.values()) {
    if (t.dtype !== 'F32' && t.dtype !== 'F16' && t.dtype !== 'BF16')
      throw new AdapterFormatError(`tensor "${t.name}": dtype ${t.dtype} is not supported`);
  }
  modules.sort((x, y) => x.layer - y.layer || x.module.localeCompare(y.module));
  return {
    kind: 'lora',
    rank: Math.max(...modules.map((mod) => mod.rank)),
    targetModules: [...new Set(modules.map((mod) => mod.module))].sort(),
    taskTokens: [],
    params: countParams(header.tensors),
    weightsFile: LORA_WEIGHTS_FILE,
    baseModel: str(config.base_model_name_or_path),
    modules,
  };
}

function checkAlpha(alpha: number, field: string, given: unknown): void {
  if (!Number.isFinite(alpha) || Math.abs(alpha) > LORA_LIMITS.maxAlpha) {
    throw new AdapterFormatError(
      `adapter_config.json: ${field} must be a number from -${LORA_LIMITS.maxAlpha} to ${LORA_LIMITS.maxAlpha} ` +
        `(got ${(typeof given === 'string' ? JSON.stringify(given) : String(given)).slice(0, 40)})`,
    );
  }
}

function parseTaskTokens(raw: unknown): string[] {
  if (raw === undefined || raw === null || raw === '') return [];
  let list = raw;
  if (typeof raw === 'string') {
    try {
      list = JSON.parse(raw);
    } catch {
      throw new AdapterFormatError('task_tokens metadata must be a JSON array of strings');
    }
  }
  if (!Array.isArray(list) || !list.every((t) => typeof t === 'string' && t.length > 0)) {
    throw new AdapterFormatError('task_tokens must be an array of non-empty strings');
  }
  if (new Set(list).size !== list.length) throw new AdapterFormatError('task_tokens has duplicates');
  return list as string[];
}

function checkTensors(actual: Map<string, TensorInfo>, expected: Map<string, number[]>): void {
  for (const [name, dims] of expected) {
    const t = actual.get(name);
    if (!t) throw new AdapterFormatError(`missing tensor "${name}"`);
    if (t.shape.join() !== dims.join())
      throw new AdapterFormatError(`tensor "${name}" has shape [${t.shape}], expected [${dims}]`);
    if (t.dtype !== 'F32' && t.dtype !== 'F16' && t.dtype !== 'BF16')
      throw new AdapterFormatError(`tensor "${name}": dtype ${t.dtype} is not supported`);
  }
  for (const name of actual.keys()) {
    if (!expected.has(name))
      throw new AdapterFormatError(`unexpected tensor "${name}" (does the adapter fit this base model?)`);
  }
}

function countParams(tensors: Map<string, TensorInfo>): number {
  let n = 0;
  for (const t of tensors.values()) n += t.shape.reduce((a, b) => a * b, 1);
  return n;
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v ? v : undefined;
}

/** The characters an alpha_pattern/rank_pattern key may use: a module path, where "." is any character. */
const PATTERN_KEY = /^[A-Za-z0-9_.-]{1,200}$/;
const MAX_PATTERN_KEYS = 1024;

/**
 * PEFT's `alpha_pattern` / `rank_pattern`: {key: value}, where PEFT runs each key as a regular
 * expression. Versa takes the subset real configs use (module paths: letters, digits, "_", "-" and
 * ".", a "." matching any character, as in the regex) and matches it without a regex engine, so no
 * key can backtrack catastrophically; anything else is refused by name.
 */
function checkedPatterns(value: unknown, field: string): Record<string, number> {
  if (value == null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw new AdapterFormatError(`${field} must be an object`);
  const entries = Object.entries(value as Record<string, unknown>);
  if (entries.length > MAX_PATTERN_KEYS)
    throw new AdapterFormatError(`${field} has more than ${MAX_PATTERN_KEYS} keys`);
  for (const [key, v] of entries) {
    if (!PATTERN_KEY.test(key)) {
      throw new AdapterFormatError(
        `${field} key ${JSON.stringify(key.slice(0, 80))} is not supported: use a module path ` +
          '(letters, digits, "_", "-", "."), not regular-expression syntax',
      );
    }
    if (typeof v !== 'number' || !Number.isFinite(v))
      throw new AdapterFormatError(`${field}["${key}"] must be a number`);
  }
  return value as Record<string, number>;
}

/**
 * PEFT's match of a pattern key against a module's full name, `(.*\.)?(key)$`, in linear time: the
 * key must cover the name's end, starting at the name's start or right after a ".".
 */
function matchesModule(key: string, fullName: string): boolean {
  const start = fullName.length - key.length;
  if (start < 0 || (start > 0 && fullName[start - 1] !== '.')) return false;
  for (let i = 0; i < key.length; i++) if (key[i] !== '.' && key[i] !== fullName[start + i]) return false;
  return true;
}
