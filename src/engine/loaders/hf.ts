import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { configFromHf, ModelFormatError, type ModelConfig } from '../model/config.ts';
import { optionalBiasShapes, weightShapes } from '../model/layout.ts';
import { SafetensorsFile } from '../weights/files.ts';
import type { StoredTensor, WeightSource } from '../weights/stored.ts';
import type { OpenedModel } from './load.ts';

/**
 * Opens a Hugging Face model folder: config.json + model.safetensors (or a sharded index). Headers
 * are read and checked against the config now; tensor bytes are read when the graph asks for them.
 */
export function openHfFolder(dir: string): Omit<OpenedModel, 'format'> {
  const configPath = join(dir, 'config.json');
  if (!existsSync(configPath)) throw new ModelFormatError(`${dir}: no config.json (not a Hugging Face model folder)`);
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(readFileSync(configPath, 'utf8'));
  } catch (e) {
    throw new ModelFormatError(`${configPath}: invalid JSON (${(e as Error).message})`);
  }
  const config = configFromHf(json);
  const files = openShards(dir);
  const close = () => {
    for (const f of new Set(files.values())) f.close();
  };
  try {
    const shards = [...new Set(files.values())];
    const fileBytes = shards.reduce((n, f) => n + f.size, 0);
    return {
      config,
      weights: storedWeights(config, files),
      fileBytes,
      files: [configPath, ...shards.map((f) => f.path)],
      close,
    };
  } catch (e) {
    close();
    throw e;
  }
}

/** Maps every tensor name (GPT-2 names normalised to carry "transformer.") to its open file. */
function openShards(dir: string): Map<string, SafetensorsFile> {
  const single = join(dir, 'model.safetensors');
  const index = join(dir, 'model.safetensors.index.json');
  const byName = new Map<string, SafetensorsFile>();
  const add = (file: SafetensorsFile) => {
    for (const name of file.names) byName.set(normalise(name), file);
  };
  if (existsSync(single)) {
    add(SafetensorsFile.open(single));
  } else if (existsSync(index)) {
    let weightMap: Record<string, string>;
    try {
      weightMap = JSON.parse(readFileSync(index, 'utf8')).weight_map;
    } catch (e) {
      throw new ModelFormatError(`${index}: invalid JSON (${(e as Error).message})`);
    }
    if (!weightMap || typeof weightMap !== 'object') throw new ModelFormatError(`${index}: no "weight_map"`);
    try {
      for (const shard of new Set(Object.values(weightMap))) {
        if (shard.includes('/') || shard.includes('\\'))
          throw new ModelFormatError(`${index}: shard name "${shard}" is not a plain file name`);
        if (!existsSync(join(dir, shard))) throw new ModelFormatError(`${index}: shard ${shard} is missing`);
        add(SafetensorsFile.open(join(dir, shard)));
      }
    } catch (e) {
      for (const f of new Set(byName.values())) f.close();
      throw e;
    }
  } else {
    const hint = existsSync(join(dir, 'pytorch_model.bin'))
      ? ' (pytorch_model.bin is not supported: save with safe_serialization=True)'
      : '';
    throw new ModelFormatError(`${dir}: no model.safetensors or model.safetensors.index.json${hint}`);
  }
  return byName;
}

/** GPT-2 checkpoints saved from GPT2Model lack the "transformer." prefix of GPT2LMHeadModel. */
function normalise(name: string): string {
  return /^(h\.\d+\.|wte\.|wpe\.|ln_f\.)/.test(name) ? `transformer.${name}` : name;
}

function storedWeights(config: ModelConfig, files: Map<string, SafetensorsFile>): WeightSource {
  const expected = weightShapes(config);
  const missing = [...expected.keys()].filter((n) => !files.has(n));
  if (missing.length) {
    throw new ModelFormatError(
      `missing ${missing.length} weight(s) for ${config.architecture}: ` +
        `${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', ...' : ''}`,
    );
  }
  const wanted = new Map([...expected, ...[...optionalBiasShapes(config)].filter(([n]) => files.has(n))]);
  const weights = new Map<string, StoredTensor>();
  for (const [name, dims] of wanted) {
    const file = files.get(name)!;
    const original = [...file.names].find((n) => normalise(n) === name)!;
    const shape = file.info(original).shape;
    if (shape.join() !== dims.join()) {
      throw new ModelFormatError(`weight ${name} has shape [${shape}] but the config implies [${dims}]`);
    }
    weights.set(name, file.stored(original));
  }
  return weights;
}
