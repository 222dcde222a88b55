import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { configFromHf, ModelFormatError, type ModelConfig } from '../model/config.ts';
import type { Weights } from '../weights/tensor.ts';
import { loadHfFolder } from './hf.ts';
import { loadLlama2c, readLlama2cConfig } from './llama2c.ts';

export interface LoadedWeights {
  config: ModelConfig;
  weights: Weights;
  format: 'hf' | 'llama2c';
}

/** A Hugging Face model folder, or a llama2.c checkpoint file. */
export function loadWeights(path: string): LoadedWeights {
  if (!existsSync(path)) throw new ModelFormatError(`model not found: ${path}`);
  if (statSync(path).isDirectory()) return { ...loadHfFolder(path), format: 'hf' };
  return { ...loadLlama2c(path), format: 'llama2c' };
}

/** Reads only what describes a model (its config and file list), without loading the weights. */
export function inspectModel(path: string): { config: ModelConfig; format: 'hf' | 'llama2c'; files: string[] } {
  if (!existsSync(path)) throw new ModelFormatError(`model not found: ${path}`);
  if (statSync(path).isDirectory()) {
    const configPath = join(path, 'config.json');
    if (!existsSync(configPath)) throw new ModelFormatError(`${path}: no config.json (not a Hugging Face model folder)`);
    const files = readdirSync(path).filter((f) => statSync(join(path, f)).isFile()).sort();
    return { config: configFromHf(JSON.parse(readFileSync(configPath, 'utf8'))), format: 'hf', files: files.map((f) => join(path, f)) };
  }
  return { config: readLlama2cConfig(path), format: 'llama2c', files: [path] };
}
