import { existsSync, statSync } from 'node:fs';
import type { ModelConfig } from '../model/config.ts';
import { ModelFormatError } from '../model/config.ts';
import type { Weights } from '../weights/tensor.ts';
import { loadHfFolder } from './hf.ts';
import { loadLlama2c } from './llama2c.ts';

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
