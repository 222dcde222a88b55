import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { HfTokenizer } from './hf.ts';
import { Llama2cTokenizer } from './llama2c.ts';
import { TokenizerError, type Tokenizer } from './types.ts';

/** A llama2.c tokenizer.bin, a tokenizer.json, or a folder holding a tokenizer.json. */
export function loadTokenizer(path: string): Tokenizer {
  if (!existsSync(path)) throw new TokenizerError(`tokenizer not found: ${path}`);
  if (statSync(path).isDirectory()) {
    if (existsSync(join(path, 'tokenizer.json'))) return HfTokenizer.fromPath(path);
    if (existsSync(join(path, 'tokenizer.bin'))) return Llama2cTokenizer.fromFile(join(path, 'tokenizer.bin'));
    throw new TokenizerError(`${path}: no tokenizer.json or tokenizer.bin in this folder`);
  }
  return path.endsWith('.json') ? HfTokenizer.fromPath(path) : Llama2cTokenizer.fromFile(path);
}
