import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { configFromHf, ModelFormatError, type ModelConfig } from '../model/config.ts';
import type { WeightSource } from '../weights/stored.ts';
import { openHfFolder } from './hf.ts';
import { openLlama2c, readLlama2cConfig } from './llama2c.ts';

/** A checkpoint whose headers were read and checked; tensor bytes are read as the graph needs them. */
export interface OpenedModel {
  config: ModelConfig;
  weights: WeightSource;
  format: 'hf' | 'llama2c';
  /** Bytes of the checkpoint's weight files. */
  fileBytes: number;
  /** The files the weights are made from (config and weight files): what the converted-weights cache is keyed by. */
  files: string[];
  /** Closes the files (once the session holds the weights: a graph makes them when they are asked for). */
  close(): void;
}

/** A Hugging Face model folder, or a llama2.c checkpoint file. */
export function openModel(path: string): OpenedModel {
  if (!existsSync(path)) throw new ModelFormatError(`model not found: ${path}`);
  if (statSync(path).isDirectory()) return { ...openHfFolder(path), format: 'hf' };
  return { ...openLlama2c(path), format: 'llama2c' };
}

/** Reads only what describes a model (its config and file list), without loading the weights. */
export function inspectModel(path: string): { config: ModelConfig; format: 'hf' | 'llama2c'; files: string[] } {
  if (!existsSync(path)) throw new ModelFormatError(`model not found: ${path}`);
  if (statSync(path).isDirectory()) {
    const configPath = join(path, 'config.json');
    if (!existsSync(configPath))
      throw new ModelFormatError(`${path}: no config.json (not a Hugging Face model folder)`);
    const files = readdirSync(path)
      .filter((f) => statSync(join(path, f)).isFile())
      .sort();
    return {
      config: configFromHf(JSON.parse(readFileSync(configPath, 'utf8'))),
      format: 'hf',
      files: files.map((f) => join(path, f)),
    };
  }
  return { config: readLlama2cConfig(path), format: 'llama2c', files: [path] };
}
