import { eosIds, parameterCount, type ModelConfig } from './model/config.ts';
import { openModel } from './loaders/load.ts';
import { checkMemory, weightFormat } from './model/precision.ts';
import { storedDtype } from './weights/stored.ts';
import { cacheKey, cachedWeights, type CacheOutcome } from './weights/cache.ts';
import type { WeightFormat } from './weights/quantize.ts';
import { loadTokenizer, locateTokenizer } from './tokenizer/load.ts';
import { TaskTokenizer } from './tokenizer/task-tokens.ts';
import type { Tokenizer } from './tokenizer/types.ts';
import { readAdapter, type Adapter, type AdapterFiles } from './adapters/read.ts';
import { loadAdapterFolder } from './adapters/load.ts';
import type { EngineRuntime } from './runtime-options.ts';
import { AdapterFormatError, type AdapterKind, type AdapterManifest } from './adapters/format.ts';
import { ModelRunner } from './runtime/runner.ts';
import type { BuiltGraph } from './graph/onnx.ts';
import { resolveProvider } from './runtime/session.ts';
import type { ExecutionProvider } from './runtime/providers.ts';
import { Scheduler, type SchedulerOptions, type StepStats } from './generation/scheduler.ts';
import { Sequence, type SequenceSink } from './generation/sequence.ts';
import type { SamplingParams } from './generation/sampler.ts';
import { Vocabulary } from './structured/vocabulary.ts';
import { RequestError, validateRequest, type GenerateRequest } from './generation/request.ts';
import { choiceSampling, choiceSinks } from './generation/choices.ts';

/** Rows an engine decodes together unless told otherwise. */
const DEFAULT_MAX_BATCH = 64;

/** How an engine runs its model, whatever it serves. */
export interface EngineOptions extends Partial<SchedulerOptions>, EngineRuntime {
  /** A Hugging Face model folder or a llama2.c checkpoint. */
  model: string;
  /** tokenizer.json, a folder with one, or llama2.c's tokenizer.bin; found next to the model if omitted. */
  tokenizer?: string;
  /**
   * Adapter kinds to serve (default both). The graph only carries what it serves: a base-only
   * engine skips the adapter ops that would otherwise run, empty, on every step.
   */
  adapterKinds?: AdapterKind[];
}

export interface EngineInfo {
  architecture: ModelConfig['architecture'];
  format: 'hf' | 'llama2c';
  config: ModelConfig;
  params: number;
  ep: ExecutionProvider;
  hasTokenizer: boolean;
  adapterKinds: AdapterKind[];
  /** The format the base weights are served in. */
  weights: WeightFormat;
  /** Whether onnxruntime repacked the weights for batched products at load (see prepackWeights). */
  prepacked: boolean;
  /** Bytes of the checkpoint's weight files, and seconds from opening them to a ready session. */
  fileBytes: number;
  loadSeconds: number;
  /** How the converted-weights cache served the load (absent without one): 'read' is the fast path. */
  weightCache?: CacheOutcome;
  /** Things the user should know (e.g. a tokenizer larger than the model's vocabulary). */
  warnings: string[];
}

/**
 * Turns prompt text into ids, with an adapter's task tokens (none for the base model). The engine
 * thread hands this work to a thread of its own (worker/tokenizer-thread.ts), so that a long
 * prompt's tokenization never holds the decode steps of the rows already running.
 */
export interface PromptEncoder {
  encode(text: string, taskTokens: readonly string[]): Promise<number[]>;
  close?(): Promise<void>;
}

/** Makes the prompt encoder of a model's tokenizer (its file, and the model's vocabulary size). */
export type PromptEncoderFactory = (tokenizerPath: string, vocabSize: number) => PromptEncoder;

/** Tokenizes on the calling thread: for engines used in-process (tests, tools), not for serving. */
const inThreadEncoder: PromptEncoderFactory = (path, vocabSize) => {
  const tokenizer = loadTokenizer(path);
  return {
    encode: async (text, taskTokens) =>
      (taskTokens.length ? new TaskTokenizer(tokenizer, vocabSize, taskTokens) : tokenizer).encode(text),
  };
};

/** A request whose fields are checked and whose prompt is tokenized: ready to start at once. */
export interface AdmittedRequest {
  prompt: number[];
  adapter?: Adapter;
  tokenizer: Tokenizer;
  sampling: SamplingParams;
  maxTokens: number;
  /** Choices, sharing the prompt's prefill. */
  n: number;
  stop: string[];
  stopIds: number[];
}

/**
 * One base model serving many adapters: loads weights and tokenizer, keeps the adapters that
 * requests may name, and turns requests into sequences for the continuous-batching scheduler.
 * Runs inside a worker thread (worker/); nothing here knows about HTTP or threads.
 */
export class Engine {
  private readonly adapters = new Map<string, { adapter: Adapter; tokenizer?: Tokenizer }>();
  private readonly scheduler: Scheduler;
  private readonly defaultStops: number[];
  private readonly maxBatch: number;

  private constructor(
    private readonly runner: ModelRunner,
    private readonly tokenizer: Tokenizer | undefined,
    private readonly encoder: PromptEncoder | undefined,
    readonly info: EngineInfo,
    opts: EngineOptions,
  ) {
    this.maxBatch = opts.maxBatch ?? DEFAULT_MAX_BATCH;
    this.scheduler = new Scheduler(runner, {
      maxBatch: this.maxBatch,
      prefillChunk: opts.prefillChunk ?? 256,
      prefillChunkIdle: opts.prefillChunkIdle ?? 2048,
      baseParams: opts.baseParams ?? info.params,
    });
    this.defaultStops = [...new Set([...(tokenizer?.stopIds ?? []), ...eosIds(info.config)])];
  }

  /** Loads the model; prompts are tokenized by `encoder`'s (by default on the engine's own thread). */
  static async load(opts: EngineOptions, encoder: PromptEncoderFactory = inThreadEncoder): Promise<Engine> {
    // Made as soon as the tokenizer is found: a thread of its own (when serving) then starts while the
    // session is created, instead of beside the first steps (on two cores, 0.3 s of CPU taken from them).
    let prompts: PromptEncoder | undefined;
    try {
      const { runner, tokenizer, info } = await openRuntime(opts, (path, vocab) => (prompts = encoder(path, vocab)));
      return new Engine(runner, tokenizer, prompts, info, opts);
    } catch (e) {
      await prompts?.close?.();
      throw e;
    }
  }

  set onStep(fn: ((stats: StepStats) => void) | undefined) {
    this.scheduler.onStep = fn;
  }

  get load(): { queued: number; active: number } {
    return { queued: this.scheduler.queued, active: this.scheduler.active };
  }

  /** Makes an adapter available to requests under `id` (files: what the adapter folder holds). */
  addAdapter(id: string, files: AdapterFiles): AdapterManifest {
    return this.register(readAdapter(id, files, this.info.config));
  }

  addAdapterFolder(dir: string, id = dir): AdapterManifest {
    return this.register(loadAdapterFolder(dir, this.info.config, id));
  }

  private register(adapter: Adapter): AdapterManifest {
    if (!this.info.adapterKinds.includes(adapter.kind)) {
      throw new AdapterFormatError(
        `this engine serves ${this.info.adapterKinds.join(' and ') || 'no'} adapters, not ${adapter.kind}`,
      );
    }
    const tokenizer =
      this.tokenizer && adapter.kind === 'vlm' && adapter.taskTokens.length
        ? new TaskTokenizer(this.tokenizer, this.info.config.vocabSize, adapter.taskTokens)
        : this.tokenizer;
    this.adapters.set(adapter.id, { adapter, tokenizer });
    return adapter.manifest;
  }

  /** Forgets an adapter; rows already running with it finish normally. */
  removeAdapter(id: string): boolean {
    return this.adapters.delete(id);
  }

  hasAdapter(id: string): boolean {
    return this.adapters.has(id);
  }

  /**
   * Checks a request and tokenizes its prompt (through the prompt encoder, off the decode loop);
   * rejects with RequestError for bad input. A text longer than the context could hold is refused
   * before any tokenizing. `start` then runs it.
   */
  async admit(req: GenerateRequest): Promise<AdmittedRequest> {
    const { maxTokens, n, sampling, stop, stopTokenIds } = validateRequest(req);
    const c = this.info.config;
    if (n > this.maxBatch) throw new RequestError(`n ${n} is over this engine's batch of ${this.maxBatch} rows`, 'n');
    const { entry, tokenizer, taskNames, vocab } = this.textOf(req.adapter);
    const taskTokens = taskNames.length;
    if (sampling.grammar) {
      if (!tokenizer) throw new RequestError("response_format needs the model's tokenizer", 'response_format');
      Vocabulary.of(tokenizer); // built once per tokenizer, here rather than in the decode step
    }
    for (const t of sampling.logitBias?.keys() ?? []) {
      if (t >= vocab)
        throw new RequestError(`logit_bias token id ${t} is outside the vocabulary (${vocab})`, 'logit_bias');
    }

    const prompt = req.promptIds ?? (await this.encodeText(req.prompt!, tokenizer, taskNames));
    const bad = prompt.find((t) => !Number.isInteger(t) || t < 0 || t >= vocab);
    if (bad !== undefined) {
      throw new RequestError(
        `prompt token id ${bad} is outside the vocabulary ` +
          `(${c.vocabSize}${taskTokens ? ` + ${taskTokens} task tokens` : ''})`,
        req.promptIds ? 'prompt_ids' : 'prompt',
      );
    }
    if (prompt.length > c.maxPositions) {
      throw new RequestError(
        `the prompt has ${prompt.length} tokens but the context is ${c.maxPositions}`,
        req.promptIds ? 'prompt_ids' : 'prompt',
      );
    }
    return {
      prompt,
      adapter: entry?.adapter,
      tokenizer: tokenizer ?? NO_TEXT,
      sampling,
      maxTokens: Math.min(maxTokens, c.maxPositions - prompt.length + 1),
      n,
      stop,
      stopIds: [...(req.ignoreEos ? [] : this.defaultStops), ...stopTokenIds],
    };
  }

  /** The tokenizer, task tokens and vocabulary of the base or of an adapter it holds. */
  private textOf(adapter: string | null | undefined) {
    const entry = adapter ? this.adapters.get(adapter) : undefined;
    if (adapter && !entry) throw new RequestError(`unknown adapter "${adapter}"`, 'adapter');
    const taskNames = entry?.adapter.kind === 'vlm' ? entry.adapter.taskTokens : [];
    return {
      entry,
      tokenizer: entry ? entry.tokenizer : this.tokenizer,
      taskNames,
      vocab: this.info.config.vocabSize + taskNames.length,
    };
  }

  /** A prompt text's ids (through the prompt encoder, off the decode loop), bounded before any tokenizing. */
  private async encodeText(text: string, tokenizer: Tokenizer | undefined, taskNames: string[]): Promise<number[]> {
    const c = this.info.config;
    if (!tokenizer || !this.encoder)
      throw new RequestError('this model has no tokenizer: send prompt_ids, or start with a tokenizer', 'prompt');
    // Bounded before any work: no token stands for more than the tokenizer's longest piece, so a
    // longer text cannot fit the context whatever it encodes to.
    const bytes = Buffer.byteLength(text);
    if (bytes > c.maxPositions * tokenizer.maxTokenBytes) {
      throw new RequestError(
        `the prompt is ${bytes} bytes: more than the context of ${c.maxPositions} tokens can hold ` +
          `(a token of this tokenizer stands for ${tokenizer.maxTokenBytes} bytes at most)`,
        'prompt',
      );
    }
    let prompt: number[];
    try {
      prompt = await this.encoder.encode(text, taskNames);
    } catch (e) {
      throw new RequestError((e as Error).message, 'prompt');
    }
    if (!prompt.length && c.bosTokenId !== undefined) prompt = [c.bosTokenId];
    if (!prompt.length)
      throw new RequestError('the prompt is empty and the model has no BOS token to start from', 'prompt');
    return prompt;
  }

  /** vLLM's /tokenize: the ids a text becomes, as a request's prompt would (an adapter's task tokens count). */
  tokenize(text: string, adapter?: string | null): Promise<number[]> {
    const { tokenizer, taskNames } = this.textOf(adapter);
    return this.encodeText(text, tokenizer, taskNames);
  }

  /** vLLM's /detokenize: the text of token ids (each checked against the vocabulary). */
  detokenize(ids: readonly number[], adapter?: string | null): string {
    const { tokenizer, vocab } = this.textOf(adapter);
    if (!tokenizer) throw new RequestError('this model has no tokenizer', 'tokens');
    const bad = ids.find((t) => !Number.isInteger(t) || t < 0 || t >= vocab);
    if (bad !== undefined) throw new RequestError(`token id ${bad} is outside the vocabulary (${vocab})`, 'tokens');
    return tokenizer.decode(ids);
  }

  /**
   * Runs an admitted request; results arrive through `sink`. Its n choices are one sequence and
   * n - 1 forks that share its id: the prompt is prefilled once, then each fork copies its cache
   * row and samples on its own (seed derived from the request's).
   */
  start(id: string, r: AdmittedRequest, sink: SequenceSink): void {
    const sinks = choiceSinks(r.n, sink, () => this.cancel(id));
    const [first, ...forks] = sinks.map(
      (choice, i) =>
        new Sequence(
          id,
          r.prompt,
          r.adapter,
          r.tokenizer,
          choiceSampling(r.sampling, i),
          r.maxTokens,
          r.stop,
          r.stopIds,
          choice,
        ),
    );
    first.forks.push(...forks);
    this.scheduler.add(first);
  }

  cancel(id: string): void {
    this.scheduler.cancel(id);
  }

  async close(): Promise<void> {
    await this.encoder?.close?.();
    await this.runner.release();
  }
}

/**
 * Opens a model for serving: reads and checks its headers, refuses what cannot fit, builds the
 * graph with the weights in their serving format, and loads the tokenizer. The engine and
 * `versa eval` share it.
 */
export async function openRuntime(
  opts: EngineOptions,
  /** Told the tokenizer's path as soon as it is found (before the weights are loaded). */
  onTokenizer?: (path: string, vocabSize: number) => void,
): Promise<{ runner: ModelRunner; tokenizer?: Tokenizer; tokenizerPath?: string; info: EngineInfo }> {
  const started = performance.now();
  const model = openModel(opts.model);
  let runner: ModelRunner;
  let config: ModelConfig;
  let tokenizer: Tokenizer | undefined;
  let tokenizerPath: string | undefined;
  let weightCache: CacheOutcome | undefined;
  const adapterKinds = opts.adapterKinds ?? ['vlm', 'lora'];
  try {
    config = withContext(model.config, opts.context);
    const ep = await resolveProvider(opts.ep ?? 'cpu');
    const format = weightFormat(config, opts, ep, storedDtype(model.weights));
    checkMemory(config, format);
    tokenizerPath = locateTokenizer(opts.model, opts.tokenizer)?.path;
    if (tokenizerPath) onTokenizer?.(tokenizerPath, config.vocabSize);
    tokenizer = tokenizerPath ? loadTokenizer(tokenizerPath) : undefined;
    const features = { vlm: adapterKinds.includes('vlm'), lora: adapterKinds.includes('lora') };
    const cache = opts.weightCache;
    const weightBytes = cache
      ? (graph: BuiltGraph) => {
          const served = cachedWeights(graph.weights, cacheKey(opts.model, model.files, format), cache);
          weightCache = served.outcome;
          return served;
        }
      : undefined;
    runner = await ModelRunner.create(config, model.weights, {
      ep,
      threads: opts.threads,
      features,
      format,
      weightBytes,
      prepack: prepackWeights(format, opts.maxBatch ?? DEFAULT_MAX_BATCH),
    });
  } finally {
    model.close();
  }
  const warnings: string[] = [];
  if (tokenizer && tokenizer.size !== config.vocabSize) {
    warnings.push(
      `the tokenizer knows ${tokenizer.size} tokens but the model has ${config.vocabSize}; ` +
        "text that encodes to ids outside the model's vocabulary is refused",
    );
  }
  const info: EngineInfo = {
    architecture: config.architecture,
    format: model.format,
    config,
    params: parameterCount(config),
    ep: runner.ep,
    hasTokenizer: tokenizer !== undefined,
    warnings,
    adapterKinds,
    weights: runner.format,
    prepacked: runner.prepacked,
    fileBytes: model.fileBytes,
    loadSeconds: (performance.now() - started) / 1000,
    weightCache,
  };
  return { runner, tokenizer, tokenizerPath, info };
}

/**
 * Whether the CPU provider should repack the weights for its GEMM kernels when the session is made
 * (onnxruntime's default). Quantized products (MatMulNBits) need it: unpacked they ran about 80x
 * slower. Float products of a one-row engine (a single prompt) do not: MLAS's one-row kernels read
 * the weights where they are, 2-9 % slower a token than the packed GEMM (110M and TinyLlama-1.1B
 * shapes, float32), while packing copies every weight at start (0.34 s for the 110M; 6-9 s for
 * TinyLlama in float32, whose whole session takes 0.17 s unpacked). Batches keep them packed: 16
 * rows of the 110M decoded about 1.5x faster packed.
 */
function prepackWeights(format: WeightFormat, maxBatch: number): boolean {
  return format.quantize !== 'none' || maxBatch > 1;
}

/** The model's config with its context cut to what the user asked for (the KV cache never exceeds it). */
function withContext(c: ModelConfig, context?: number): ModelConfig {
  if (context === undefined) return c;
  if (!Number.isInteger(context) || context < 1)
    throw new RequestError(`context must be a positive integer (got ${context})`, 'context');
  if (context > c.maxPositions)
    throw new RequestError(`context ${context} exceeds the model's maximum of ${c.maxPositions} positions`, 'context');
  return { ...c, maxPositions: context };
}

/** For models served without a tokenizer: ids only, no text. */
const NO_TEXT: Tokenizer = {
  size: 0,
  stopIds: [],
  template: { prefix: [], suffix: [] },
  maxTokenBytes: 1,
  encode: () => [],
  encodePlain: () => [],
  decode: () => '',
  streamDecoder: () => ({ push: () => '', flush: () => '' }),
  tokenText: () => '',
  tokenBytes: () => undefined,
};
