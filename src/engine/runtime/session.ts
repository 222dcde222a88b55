import { randomBytes } from 'node:crypto';
import { closeSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import ort from 'onnxruntime-node';
import { GraphBuilder, referencingFile, type EncodedGraph } from '../graph/onnx.ts';
import { readExact } from '../weights/files.ts';
import type { ExecutionProvider, ProviderChoice } from './providers.ts';

// Failures surface as exceptions with our own message; onnxruntime's own log would repeat them.
ort.env.logLevel = 'fatal';

class ExecutionProviderError extends Error {
  override name = 'ExecutionProviderError';
}

const HINTS: Record<ExecutionProvider, string> = {
  cpu: '',
  webgpu: 'WebGPU needs a GPU with a Vulkan driver (libvulkan) on Linux.',
  cuda:
    "onnxruntime-node's CUDA libraries are not bundled (package.json denies their download); on a CUDA 12 host run " +
    '`ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules/onnxruntime-node/script/install` (needs the NuGet feed) ' +
    'or use --ep webgpu.',
};

/**
 * The provider `choice` stands for on this host: itself, or for `auto` the first of cuda and
 * webgpu that loads (a session of one node tells, in milliseconds), else cpu. Known before the
 * model's graph is built, since the weights' float type depends on it.
 */
export async function resolveProvider(choice: ProviderChoice): Promise<ExecutionProvider> {
  if (choice !== 'auto') return choice;
  const g = new GraphBuilder();
  g.input('x', 'float32', [1]);
  g.output(g.op('Relu', ['x']), 'y', 'float32', [1]);
  for (const ep of ['cuda', 'webgpu'] as const) {
    try {
      await (await createSession(g.encode(), ep, { threads: 1 })).session.release();
      return ep;
    } catch {
      // not on this host: try the next one
    }
  }
  return 'cpu';
}

export interface SessionOptions {
  /** CPU threads (default: all cores). */
  threads?: number;
  /** Whether the CPU provider repacks constant weights for its GEMM kernels at creation (its default). */
  prepack?: boolean;
  /** Outputs that stay in the provider's memory (WebGPU's `gpu-buffer` tensors; elsewhere ignored). */
  deviceOutputs?: readonly string[];
}

/** Creates the inference session, failing with a clear message when the provider cannot load. */
export async function createSession(
  graph: EncodedGraph,
  choice: ProviderChoice,
  opts: SessionOptions = {},
): Promise<{ session: ort.InferenceSession; ep: ExecutionProvider }> {
  if (choice === 'auto') return createSession(graph, await resolveProvider(choice), opts);
  const { threads, prepack = true, deviceOutputs = [] } = opts;
  const onDevice = choice === 'webgpu' && deviceOutputs.length > 0;
  const options: ort.InferenceSession.SessionOptions = {
    executionProviders: choice === 'cuda' ? [{ name: 'cuda', deviceId: 0 }] : [choice],
    graphOptimizationLevel: 'all',
    intraOpNumThreads: threads ?? availableParallelism(),
    interOpNumThreads: 1,
    logSeverityLevel: 4,
    // The weights, from the buffers the loader filled (onnxruntime copies them into its own).
    externalData: graph.externalData,
    ...(prepack ? {} : { extra: { session: { disable_prepacking: '1' } } }),
    ...(onDevice ? { preferredOutputLocation: Object.fromEntries(deviceOutputs.map((n) => [n, 'gpu-buffer'])) } : {}),
  };
  try {
    return { session: await createFrom(graph, options), ep: choice };
  } catch (e) {
    if (choice === 'cpu') throw e;
    throw new ExecutionProviderError(
      `execution provider "${choice}" could not be loaded: ${essence((e as Error).message)}. ${HINTS[choice]}`,
    );
  }
}

/**
 * The session of a graph whose weights are in memory, or partly in a file (`weightsFile`): then the
 * model goes to a temporary file beside it, since onnxruntime resolves external data relative to
 * the model's folder (and refuses absolute locations), and maps the weights from there.
 */
async function createFrom(graph: EncodedGraph, options: ort.InferenceSession.SessionOptions) {
  if (!graph.weightsFile) return ort.InferenceSession.create(graph.model, options);
  // Named like the cache's own temporary files, so that one left by a process that died is removed.
  const modelFile = `${graph.weightsFile.file}.${process.pid}.${randomBytes(4).toString('hex')}.model.tmp`;
  try {
    writeFileSync(modelFile, referencingFile({ ...graph, weightsFile: graph.weightsFile }));
  } catch {
    // A folder we may not write to (a read-only cache): the weights go through memory instead.
    return ort.InferenceSession.create(graph.model, { ...options, externalData: withFileWeights(graph) });
  }
  try {
    return await ort.InferenceSession.create(modelFile, { ...options, externalData: undefined });
  } finally {
    rmSync(modelFile, { force: true });
  }
}

/** Every weight in memory: `externalData` and those of `weightsFile`, read from it. */
function withFileWeights(graph: EncodedGraph): EncodedGraph['externalData'] {
  const { file, at } = graph.weightsFile!;
  const fd = openSync(file, 'r');
  try {
    const read = [...at].map(([path, { offset, length }]) => ({ path, data: readExact(fd, offset, length, file) }));
    return [...graph.externalData, ...read];
  } finally {
    closeSync(fd);
  }
}

/** The informative part of an onnxruntime error (without its source paths and assertions). */
function essence(message: string): string {
  const line = message.split('\n')[0];
  return line
    .replace(/^.*? was false\. /, '')
    .replace(/^\/onnxruntime_src\/\S+ \S+ /, '')
    .trim();
}
