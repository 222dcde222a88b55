import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
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

/**
 * Where a model's tokenizer is: `explicit` (a file, or a folder holding one), else a
 * tokenizer.json or tokenizer.bin in the model's folder (next to a llama2.c checkpoint).
 */
export function locateTokenizer(
  modelPath: string,
  explicit?: string,
): { path: string; kind: 'hf' | 'llama2c' } | undefined {
  const where = explicit ?? (statSync(modelPath).isDirectory() ? modelPath : dirname(modelPath));
  if (!existsSync(where)) throw new TokenizerError(`tokenizer not found: ${where}`);
  if (!statSync(where).isDirectory()) return { path: where, kind: where.endsWith('.json') ? 'hf' : 'llama2c' };
  if (existsSync(join(where, 'tokenizer.json'))) return { path: join(where, 'tokenizer.json'), kind: 'hf' };
  if (existsSync(join(where, 'tokenizer.bin'))) return { path: join(where, 'tokenizer.bin'), kind: 'llama2c' };
  if (explicit) throw new TokenizerError(`${where}: no tokenizer.json or tokenizer.bin in this folder`);
  return undefined;
}

/**
 * The chat template a Hugging Face tokenizer ships: chat_template.jinja next to it, else
 * tokenizer_config.json's "chat_template" (a string, or named templates of which "default" is
 * the one chat uses). Undefined when there is none.
 */
export function chatTemplateNextTo(tokenizerPath: string): string | undefined {
  const dir = statSync(tokenizerPath).isDirectory() ? tokenizerPath : dirname(tokenizerPath);
  const jinja = join(dir, 'chat_template.jinja');
  if (existsSync(jinja)) return readFileSync(jinja, 'utf8');
  const configPath = join(dir, 'tokenizer_config.json');
  if (!existsSync(configPath)) return undefined;
  let config: { chat_template?: unknown };
  try {
    config = JSON.parse(readFileSync(configPath, 'utf8'));
  } catch (e) {
    throw new TokenizerError(`${configPath}: invalid JSON (${(e as Error).message})`);
  }
  const t = config.chat_template;
  if (typeof t === 'string') return t;
  if (Array.isArray(t)) {
    const named = t.find((x) => x?.name === 'default');
    if (typeof named?.template === 'string') return named.template;
  }
  return undefined;
}
