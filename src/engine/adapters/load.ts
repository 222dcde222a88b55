import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { ModelConfig } from '../model/config.ts';
import { ADAPTER_CONFIG_FILE, AdapterFormatError, detectKind, type AdapterKind } from './format.ts';
import { readAdapter, type Adapter } from './read.ts';

/** Reads an adapter folder (PEFT LoRA or VLM) from disk; `id` defaults to the folder path. */
export function loadAdapterFolder(dir: string, base: ModelConfig, id = dir): Adapter {
  if (!existsSync(dir) || !statSync(dir).isDirectory())
    throw new AdapterFormatError(`adapter folder not found: ${dir}`);
  const files = new Map<string, Uint8Array>();
  for (const name of readdirSync(dir)) {
    if (name.endsWith('.safetensors')) files.set(name, readFileSync(join(dir, name)));
  }
  let config: Record<string, unknown> | undefined;
  const configPath = join(dir, ADAPTER_CONFIG_FILE);
  if (existsSync(configPath)) {
    try {
      config = JSON.parse(readFileSync(configPath, 'utf8'));
    } catch (e) {
      throw new AdapterFormatError(`${configPath}: invalid JSON (${(e as Error).message})`);
    }
  }
  try {
    return readAdapter(id, { config, files }, base);
  } catch (e) {
    if (e instanceof Error) e.message = `${dir}: ${e.message}`;
    throw e;
  }
}

/** The kind of the adapter in `dir`, from its file names and config alone. */
export function adapterKindOf(dir: string): AdapterKind {
  if (!existsSync(dir) || !statSync(dir).isDirectory())
    throw new AdapterFormatError(`adapter folder not found: ${dir}`);
  const configPath = join(dir, ADAPTER_CONFIG_FILE);
  let config: Record<string, unknown> | undefined;
  try {
    config = existsSync(configPath) ? JSON.parse(readFileSync(configPath, 'utf8')) : undefined;
  } catch (e) {
    throw new AdapterFormatError(`${configPath}: invalid JSON (${(e as Error).message})`);
  }
  return detectKind(config, readdirSync(dir));
}
