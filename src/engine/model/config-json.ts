/**
 * Reading config.json's fields: the limits a config must keep and the error it gets otherwise.
 * Apart from config.ts so that the architecture modules, which config.ts lists, can read fields
 * without importing it back.
 */
export class ModelFormatError extends Error {
  override name = 'ModelFormatError';
}

/**
 * Upper bounds of a model's dimensions: generous for any real model (Llama 3.1 405B has 126 layers,
 * hidden 16384, vocabulary 128256), small enough that a config cannot make the server allocate or
 * loop over absurd sizes before it is refused.
 */
export const CONFIG_LIMITS = {
  vocabSize: 1 << 21,
  hiddenSize: 1 << 16,
  numLayers: 1024,
  numHeads: 1024,
  numKvHeads: 1024,
  headDim: 1024,
  intermediateSize: 1 << 20,
  maxPositions: 1 << 22,
} as const;

export function int(value: unknown, field: string, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) {
    throw new ModelFormatError(`config.json: "${field}" must be a positive integer (got ${JSON.stringify(value)})`);
  }
  if (value > max) throw new ModelFormatError(`config.json: "${field}" is ${value}, over the limit of ${max}`);
  return value;
}

export function eos(v: unknown): number | number[] | undefined {
  if (typeof v === 'number') return v;
  if (Array.isArray(v) && v.every((x) => typeof x === 'number')) return v as number[];
  return undefined;
}
