import { availableParallelism } from 'node:os';
import ort from 'onnxruntime-node';

export type ExecutionProvider = 'cpu' | 'webgpu' | 'cuda';
export const EXECUTION_PROVIDERS: readonly ExecutionProvider[] = ['cpu', 'webgpu', 'cuda'];

export class ExecutionProviderError extends Error {
  override name = 'ExecutionProviderError';
}

const HINTS: Record<ExecutionProvider, string> = {
  cpu: '',
  webgpu: 'WebGPU needs a GPU with a Vulkan driver (libvulkan) on Linux.',
  cuda:
    "onnxruntime-node's CUDA libraries are not bundled (.npmrc skips their download); on a CUDA 12 host run " +
    '`npm rebuild onnxruntime-node --onnxruntime-node-install=cuda12` (needs the NuGet feed) or use --ep webgpu.',
};

/** Execution providers this onnxruntime-node build can load without extra downloads. */
export function bundledProviders(): string[] {
  return ort.listSupportedBackends().filter((b) => b.bundled).map((b) => b.name);
}

/** Creates the inference session, failing with a clear message when the provider cannot load. */
export async function createSession(model: Uint8Array, ep: ExecutionProvider, threads?: number): Promise<ort.InferenceSession> {
  const options: ort.InferenceSession.SessionOptions = {
    executionProviders: ep === 'cuda' ? [{ name: 'cuda', deviceId: 0 }] : [ep],
    graphOptimizationLevel: 'all',
    intraOpNumThreads: threads ?? availableParallelism(),
    interOpNumThreads: 1,
    logSeverityLevel: 3,
  };
  try {
    return await ort.InferenceSession.create(model, options);
  } catch (e) {
    if (ep === 'cpu') throw e;
    throw new ExecutionProviderError(`execution provider "${ep}" could not be loaded: ${(e as Error).message.split('\n')[0]}. ${HINTS[ep]}`);
  }
}
