import type { ModelConfig } from '../model/config.ts';
import type { ArchitectureModule } from './architecture.ts';
import { gpt2 } from './gpt2.ts';
import { llama } from './llama.ts';
import { mistral } from './mistral.ts';
import { qwen2 } from './qwen2.ts';
import { qwen3 } from './qwen3.ts';
import { phi3 } from './phi3.ts';
import { gemma } from './gemma.ts';
import { gemma2 } from './gemma2.ts';

/**
 * Every architecture Versa serves, one module each: adding one is its module and a line here.
 * ModelConfig.architecture takes its values from this list (model/config.ts ARCHITECTURES).
 */
export const ARCHITECTURE_MODULES = [gpt2, llama, mistral, qwen2, qwen3, phi3, gemma, gemma2] as const;

/** The module that declares a config's architecture. */
export function architectureOf(c: Pick<ModelConfig, 'architecture'>): ArchitectureModule {
  return ARCHITECTURE_MODULES.find((a) => a.name === c.architecture)!;
}

/** The module a config.json names: by model_type, else by the transformers class in "architectures". */
export function architectureOfHf(modelType: string, classes: readonly string[]): ArchitectureModule | undefined {
  const modules: readonly ArchitectureModule[] = ARCHITECTURE_MODULES;
  return modules.find((a) => a.name === modelType) ?? modules.find((a) => classes.includes(a.hfClass));
}
