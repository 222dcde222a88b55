import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parameterCount, type ModelConfig } from '../engine/model/config.ts';
import { bytesReadPerToken, quantizeBlockFor } from '../engine/model/precision.ts';
import { inspectModel } from '../engine/loaders/load.ts';
import { FLOAT32, type Quantization } from '../engine/weights/quantize.ts';
import { EngineClient } from '../engine/worker/client.ts';
import { measureReadBandwidth } from './bandwidth.ts';
import { GPT2_SMALL, randomWeights, writeGpt2Folder, writeVlmAdapter } from '../engine/synthetic.ts';
import type { StructuredFigures } from './structured.ts';
import type { GenerateRequest } from '../engine/generation/request.ts';
import type { ProviderChoice } from '../engine/runtime/providers.ts';

/** Load time, and batch-1 and batch-16 decode, of float32, int8 and int4 weights (`bench engine --precision-only`). */
export interface PrecisionBenchResult {
  model: string;
  /** The execution provider the engines ran on. */
  ep: string;
  threads: number;
  /** Memory-read bandwidth of the provider's memory (the host's, or the GPU's), which bounds the roofline figures. */
  bandwidth_gbs: number;
  /** Wall time from starting an engine (float32) to ready, and the checkpoint's bytes over it. */
  load_seconds: number;
  load_gbps: number;
  /** The same for int4, and batch-1 decode of each precision, alternating in one run. */
  load_seconds_int4: number;
  decode_tps_b1_f32: number;
  decode_tps_b1_int8: number;
  decode_tps_b1_int4: number;
  /** Batch-16 decode (aggregate) of each precision, alternating in the same run, and over its batch 1. */
  decode_tps_b16_f32: number;
  decode_tps_b16_int8: number;
  decode_tps_b16_int4: number;
  b16_over_b1_f32: number;
  b16_over_b1_int8: number;
  b16_over_b1_int4: number;
  int8_speedup: number;
  int4_speedup: number;
  /** Batch-1 decode against bandwidth / the bytes each precision reads per token. */
  roofline_ratio_b1_f32: number;
  roofline_ratio_b1_int8: number;
  roofline_ratio_b1_int4: number;
  /**
   * Bytes of host memory a float32 batch-1 decode step feeds (the median step) after a prompt of 16
   * and of 512 positions: on a GPU provider, what goes to the device each step. With the cache on the
   * device (WebGPU) it must not grow with the context; the CPU provider reads the host cache in place.
   */
  host_bytes_per_step_ctx16: number;
  host_bytes_per_step_ctx512: number;
  targets: Record<string, { target: string; met: boolean }>;
}

export interface EngineBenchResult extends PrecisionBenchResult {
  model: string;
  threads: number;
  decode_tps_b1: number;
  decode_tps_b16: number;
  /** Batch-1 decode of the base on an engine that also serves VLM adapters (their ops run, empty). */
  decode_tps_b1_vlm_engine: number;
  prefill_tps: number;
  bandwidth_gbs: number;
  /** Bytes of weights read to decode one token at batch 1 (all but the position-embedding rows). */
  bytes_per_token_b1: number;
  roofline_tps_b1: number;
  roofline_ratio_b1: number;
  /** Bottleneck-300 VLM adapter vs the base at batch 1: 0.05 = 5 % slower. */
  adapter_slowdown: number;
  /** 16 rows on 16 distinct adapters vs 16 rows on one adapter (bottleneck 64, ~1 % of the base each). */
  mixed_vs_single: number;
  /** The same with 16 distinct bottleneck-300 adapters (4.5 % of the base each, 22 MB). */
  mixed_vs_single_b300: number;
  /** Loading a new 22 MB adapter (bytes in memory) into the running engine, until a request can use it. */
  adapter_load_ms: number;
  targets: Record<string, { target: string; met: boolean }>;
}

/**
 * The security review's case in miniature: on a small base (GPT-2 shape, 128 wide, 2 layers,
 * 0.7M parameters), 8 rows on 8 small adapters (bottleneck 8) decode beside one row of an adapter
 * with 20x the base's parameters. The small rows' tokens/s when size classes run apart (the
 * default) and when every row shares one run padded to the large adapter (as before size classes),
 * engines alternating.
 */
export interface SizeClassFigures {
  small_tps_beside_large: number;
  small_tps_beside_large_one_run: number;
  /** small_tps_beside_large / small_tps_beside_large_one_run. */
  size_classes_speedup: number;
}

export interface EngineBenchOptions {
  threads?: number;
  /** Execution provider of the engines (default cpu). */
  ep?: ProviderChoice;
  log?: (line: string) => void;
  /** A checkpoint to measure instead of the synthetic GPT-2-small-sized model. */
  model?: string;
  tokenizer?: string;
  /** Block size of the int8/int4 runs. */
  quantizeBlock?: number;
  /** Only the load and precision figures (skips batching and adapters: quick on big models). */
  precisionOnly?: boolean;
  /** Only the size-class figures (small adapters beside a 20x larger one). */
  sizeClassesOnly?: boolean;
  /** Only structured output's token-mask cost against a decode step (GPT-2's tokenizer: `tokenizer`). */
  structuredOnly?: boolean;
}

const PROMPT = Array.from({ length: 16 }, (_, i) => 1000 + i * 37);

/**
 * `versa bench engine`: GPT-2-small-sized model with seeded random weights (or `--model`), driven
 * through the engine thread exactly as the CLI and the compute node drive it.
 */
export async function benchEngine(opts: EngineBenchOptions & { precisionOnly: true }): Promise<PrecisionBenchResult>;
export async function benchEngine(
  opts: EngineBenchOptions & { sizeClassesOnly: true },
): Promise<SizeClassFigures & { threads: number }>;
export async function benchEngine(
  opts: EngineBenchOptions & { structuredOnly: true },
): Promise<StructuredFigures & { threads: number }>;
export async function benchEngine(opts?: EngineBenchOptions): Promise<EngineBenchResult & SizeClassFigures>;
export async function benchEngine(opts: EngineBenchOptions = {}): Promise<object> {
  const log = opts.log ?? (() => {});
  const threads = opts.threads ?? availableParallelism();
  const dir = mkdtempSync(join(tmpdir(), 'versa-bench-'));
  try {
    // Its own small base: the GPT-2-small-sized model (or --model) is not needed.
    if (opts.sizeClassesOnly) return { threads, ...(await sizeClassFigures(threads, dir, log)) };
    if (opts.structuredOnly) {
      const { structuredFigures } = await import('./structured.ts');
      return { threads, ...(await structuredFigures(threads, dir, log, opts.tokenizer)) };
    }
    let c: ModelConfig = GPT2_SMALL;
    let modelPath = join(dir, 'model');
    if (opts.model) {
      modelPath = opts.model;
      c = inspectModel(opts.model).config;
    } else {
      log('writing a GPT-2-small-sized model with seeded random weights');
      writeGpt2Folder(modelPath, c, randomWeights(c, 1));
    }
    const prompt = PROMPT.map((t) => t % c.vocabSize); // ids every vocabulary has
    const decodeRate = (e: EngineClient, adapters: Array<string | undefined>, tokens: number) =>
      decodeRateOf(e, adapters, tokens, prompt);
    const block = quantizeBlockFor(c, opts.quantizeBlock);
    const ep = opts.ep ?? 'cpu';
    const precision = await comparePrecisions(modelPath, c, { threads, ep }, block, prompt, log);
    const described = opts.model ? `${opts.model}: ${c.architecture}` : 'gpt2-small shape';
    const model =
      `${described} (${(parameterCount(c) / 1e6).toFixed(1)}M params` +
      `${opts.model ? '' : ', float32, seeded random weights'})`;
    if (opts.precisionOnly) {
      log('measuring memory-read bandwidth');
      const bandwidth = await measureReadBandwidth(threads, 512, precision.ep);
      return {
        model,
        ep: precision.ep,
        threads,
        bandwidth_gbs: round(bandwidth),
        ...precisionFigures(precision, c, bandwidth, block),
        targets: speedupTargets(precision),
      };
    }
    log('writing random VLM adapters (bottleneck 300 and 64)');
    for (let i = 0; i < 16; i++) {
      writeVlmAdapter(join(dir, `b300-${i}`), c, 300, 100 + i);
      writeVlmAdapter(join(dir, `b64-${i}`), c, 64, 200 + i);
    }
    writeVlmAdapter(join(dir, 'fresh'), c, 300, 999);

    log('measuring memory-read bandwidth');
    let bandwidth = await measureReadBandwidth(threads, 512, precision.ep);

    // The base decoder alone (a graph without adapter ops), as a user serving no adapters gets it.
    log('loading the engine (no adapter kinds)');
    const plain = await EngineClient.start({ model: modelPath, threads, ep, maxBatch: 64, adapterKinds: [] });
    let b1: number, b16: number, prefill: number;
    // The weights' format the batch-1 roofline counts: float32 on the CPU, float16 on WebGPU (dtype auto).
    const servedFormat = plain.info.weights;
    try {
      await decodeRate(plain, [undefined], 8); // warm-up
      log('decode at batch 1 and 16, prefill');
      b1 = median([
        await decodeRate(plain, [undefined], 48),
        await decodeRate(plain, [undefined], 48),
        await decodeRate(plain, [undefined], 48),
      ]);
      b16 = median([
        await decodeRate(plain, Array(16).fill(undefined), 32),
        await decodeRate(plain, Array(16).fill(undefined), 32),
        await decodeRate(plain, Array(16).fill(undefined), 32),
      ]);
      const prompt = Array.from({ length: 512 }, (_, i) => (i * 7919) % c.vocabSize);
      let best = Infinity;
      for (let k = 0; k < 3; k++) {
        const t0 = performance.now();
        await plain.generate({ promptIds: prompt, maxTokens: 1 }).result;
        best = Math.min(best, performance.now() - t0);
      }
      prefill = prompt.length / (best / 1000);
    } finally {
      await plain.close();
    }
    bandwidth = Math.max(bandwidth, await measureReadBandwidth(threads, 512, precision.ep));

    log('loading the engine (VLM adapters)');
    const engine = await EngineClient.start({ model: modelPath, threads, ep, maxBatch: 64, adapterKinds: ['vlm'] });
    try {
      for (let i = 0; i < 16; i++) {
        await engine.addAdapterFolder(`b300-${i}`, join(dir, `b300-${i}`));
        await engine.addAdapterFolder(`b64-${i}`, join(dir, `b64-${i}`));
      }
      await decodeRate(engine, ['b300-0'], 8); // warm-up

      // Shared machines are noisy: compare A and B in alternating short runs, medians of each.
      log('adapter overhead at batch 1 (bottleneck 300), base and adapter alternating');
      const [base1, adapter1] = await alternate(
        () => decodeRate(engine, [undefined], 24),
        () => decodeRate(engine, ['b300-0'], 24),
        8,
      );

      log('16 distinct adapters vs one adapter, 16 rows');
      const mixedRatio = async (bottleneck: number) => {
        const [single, mixed] = await alternate(
          () => decodeRate(engine, Array(16).fill(`b${bottleneck}-0`), 24),
          () =>
            decodeRate(
              engine,
              Array.from({ length: 16 }, (_, i) => `b${bottleneck}-${i}`),
              24,
            ),
          4,
        );
        return mixed / single;
      };
      const mixed64 = await mixedRatio(64);
      const mixed300 = await mixedRatio(300);

      log('loading a new 22 MB adapter (bytes in memory), three times');
      const bytes = readFileSync(join(dir, 'fresh', 'adapter.safetensors'));
      const timed = async (work: () => Promise<unknown>) => {
        const t = performance.now();
        await work();
        return performance.now() - t;
      };
      const loads: number[] = [];
      for (let k = 0; k < 3; k++) {
        const baseline = await timed(() => engine.generate({ promptIds: prompt, maxTokens: 1 }).result);
        const withLoad = await timed(async () => {
          await engine.addAdapter(`fresh-${k}`, { files: new Map([['adapter.safetensors', new Uint8Array(bytes)]]) });
          await engine.generate({ promptIds: prompt, maxTokens: 1, adapter: `fresh-${k}` }).result;
        });
        loads.push(withLoad - baseline);
      }
      const loadMs = median(loads);
      const sizeClasses = await sizeClassFigures(threads, dir, log);

      const bytesPerToken = bytesReadPerToken(c, servedFormat);
      const roofline = (bandwidth * 1e9) / bytesPerToken;
      const result: Omit<EngineBenchResult, 'targets'> = {
        model,
        ep: precision.ep,
        threads,
        decode_tps_b1: round(b1),
        decode_tps_b16: round(b16),
        decode_tps_b1_vlm_engine: round(base1),
        prefill_tps: round(prefill),
        bandwidth_gbs: round(bandwidth),
        bytes_per_token_b1: bytesPerToken,
        roofline_tps_b1: round(roofline),
        roofline_ratio_b1: round(b1 / roofline, 3),
        adapter_slowdown: round(base1 / adapter1 - 1, 3),
        mixed_vs_single: round(mixed64, 3),
        mixed_vs_single_b300: round(mixed300, 3),
        adapter_load_ms: round(loadMs, 1),
        ...sizeClasses,
        ...precisionFigures(precision, c, bandwidth, block),
      };
      return {
        ...result,
        targets: {
          ...speedupTargets(precision),
          roofline_ratio_b1: { target: '>= 0.70', met: result.roofline_ratio_b1 >= 0.7 },
          adapter_slowdown: { target: '<= 0.08', met: result.adapter_slowdown <= 0.08 },
          mixed_vs_single: { target: '>= 0.85', met: result.mixed_vs_single >= 0.85 },
          adapter_load_ms: { target: '< 50', met: result.adapter_load_ms < 50 },
        },
      };
    } finally {
      await engine.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Small adapters beside one of 20x the base's parameters (SizeClassFigures): two engines of the
 * same small model, one with size classes and one that pads every row to the largest adapter
 * (`baseParams: Infinity`: one run always), measured alternately.
 */
async function sizeClassFigures(threads: number, dir: string, log: (line: string) => void): Promise<SizeClassFigures> {
  const c: ModelConfig = {
    ...GPT2_SMALL,
    vocabSize: 2048,
    hiddenSize: 128,
    numLayers: 2,
    numHeads: 2,
    numKvHeads: 2,
    intermediateSize: 512,
    maxPositions: 256,
    bosTokenId: 0,
    eosTokenId: 0,
  };
  const model = join(dir, 'small-base');
  // A VLM adapter has layers x (2 d m + m + d) parameters: m for 20x the base.
  const bottleneck = Math.round((20 * parameterCount(c)) / (c.numLayers * (2 * c.hiddenSize + 1)));
  log(
    `writing a ${(parameterCount(c) / 1e6).toFixed(1)}M-parameter base, 8 small VLM adapters (bottleneck 8) ` +
      `and one of 20x the base (bottleneck ${bottleneck})`,
  );
  writeGpt2Folder(model, c, randomWeights(c, 2));
  for (let i = 0; i < 8; i++) writeVlmAdapter(join(dir, `small-${i}`), c, 8, 300 + i);
  writeVlmAdapter(join(dir, 'large'), c, bottleneck, 400);
  const prompt = PROMPT.map((t) => t % c.vocabSize);
  const engines: EngineClient[] = [];
  try {
    for (const baseParams of [undefined, Infinity]) {
      log(`loading the engine (${baseParams ? 'one run for all rows' : 'size classes'})`);
      const engine = await EngineClient.start({ model, threads, maxBatch: 64, adapterKinds: ['vlm'], baseParams });
      engines.push(engine);
      for (let i = 0; i < 8; i++) await engine.addAdapterFolder(`small-${i}`, join(dir, `small-${i}`));
      await engine.addAdapterFolder('large', join(dir, 'large'));
    }
    const rows = [...Array.from({ length: 8 }, (_, i) => `small-${i}`), 'large'];
    const small = (engine: EngineClient) => decodeRateOf(engine, rows, 32, prompt, (adapter) => adapter !== 'large');
    for (const engine of engines) await decodeRateOf(engine, rows, 4, prompt); // warm-up
    log("small adapters' decode beside the large one: size classes and one run alternating");
    const [apart, together] = await alternate(
      () => small(engines[0]),
      () => small(engines[1]),
      5,
    );
    return {
      small_tps_beside_large: round(apart),
      small_tps_beside_large_one_run: round(together),
      size_classes_speedup: round(apart / together, 2),
    };
  } finally {
    await Promise.all(engines.map((e) => e.close()));
  }
}

/**
 * Float32, int8 and int4 engines of the same checkpoint: start-to-ready wall time, and batch-1
 * decode alternating between the three (base-only graphs), medians of short runs.
 */
async function comparePrecisions(
  model: string,
  c: ModelConfig,
  { threads, ep }: { threads: number; ep: ProviderChoice },
  block: number,
  prompt: number[],
  log: (line: string) => void,
) {
  const engines = {} as Record<Quantization, EngineClient>;
  const loads = {} as Record<Quantization, number>;
  let fileBytes = 0;
  try {
    for (const quantize of ['none', 'int8', 'int4'] as const) {
      log(`loading the engine (${quantize === 'none' ? 'float32' : quantize}, no adapter kinds)`);
      const t = performance.now();
      engines[quantize] = await EngineClient.start({
        model,
        threads,
        ep,
        adapterKinds: [],
        // The "f32" figures are float32 on every provider (auto is float16 on WebGPU).
        ...(quantize === 'none' ? { dtype: 'float32' as const } : {}),
        quantize,
        quantizeBlock: block,
        context: Math.min(c.maxPositions, 1024),
      });
      loads[quantize] = (performance.now() - t) / 1000;
      fileBytes = engines[quantize].info.fileBytes;
      await decodeRateOf(engines[quantize], [undefined], 8, prompt); // warm-up
    }
    log('batch-1 decode: float32, int8 and int4 alternating');
    const runs = { none: [] as number[], int8: [] as number[], int4: [] as number[] };
    for (let k = 0; k < 5; k++)
      for (const q of ['none', 'int8', 'int4'] as const)
        runs[q].push(await decodeRateOf(engines[q], [undefined], 24, prompt));
    const tps = { none: median(runs.none), int8: median(runs.int8), int4: median(runs.int4) };
    log('batch-16 decode: float32, int8 and int4 alternating');
    const rows = Array<undefined>(16).fill(undefined);
    const runs16 = { none: [] as number[], int8: [] as number[], int4: [] as number[] };
    for (let k = 0; k < 3; k++)
      for (const q of ['none', 'int8', 'int4'] as const)
        runs16[q].push(await decodeRateOf(engines[q], rows, 16, prompt));
    const tps16 = { none: median(runs16.none), int8: median(runs16.int8), int4: median(runs16.int4) };
    log('host bytes a decode step feeds, after 16 and 512 positions');
    const fed = {
      short: await hostBytesPerDecodeStep(engines.none, 16, c.vocabSize),
      long: await hostBytesPerDecodeStep(engines.none, Math.min(512, c.maxPositions - 16), c.vocabSize),
    };
    const ranOn = engines.none.info.ep;
    return { ep: ranOn, loadSeconds: loads.none, loadSecondsInt4: loads.int4, fileBytes, tps, tps16, fed };
  } finally {
    await Promise.all(Object.values(engines).map((e) => e.close()));
  }
}

type Precisions = Awaited<ReturnType<typeof comparePrecisions>>;

function precisionFigures(p: Precisions, c: ModelConfig, bandwidth: number, block: number) {
  const rooflineOf = (quantize: Quantization) =>
    (bandwidth * 1e9) / bytesReadPerToken(c, { ...FLOAT32, quantize, block });
  return {
    load_seconds: round(p.loadSeconds, 2),
    load_gbps: round(p.fileBytes / p.loadSeconds / 1e9, 2),
    load_seconds_int4: round(p.loadSecondsInt4, 2),
    decode_tps_b1_f32: round(p.tps.none),
    decode_tps_b1_int8: round(p.tps.int8),
    decode_tps_b1_int4: round(p.tps.int4),
    decode_tps_b16_f32: round(p.tps16.none),
    decode_tps_b16_int8: round(p.tps16.int8),
    decode_tps_b16_int4: round(p.tps16.int4),
    b16_over_b1_f32: round(p.tps16.none / p.tps.none, 2),
    b16_over_b1_int8: round(p.tps16.int8 / p.tps.int8, 2),
    b16_over_b1_int4: round(p.tps16.int4 / p.tps.int4, 2),
    int8_speedup: round(p.tps.int8 / p.tps.none, 2),
    int4_speedup: round(p.tps.int4 / p.tps.none, 2),
    roofline_ratio_b1_f32: round(p.tps.none / rooflineOf('none'), 3),
    roofline_ratio_b1_int8: round(p.tps.int8 / rooflineOf('int8'), 3),
    roofline_ratio_b1_int4: round(p.tps.int4 / rooflineOf('int4'), 3),
    host_bytes_per_step_ctx16: p.fed.short,
    host_bytes_per_step_ctx512: p.fed.long,
  };
}

/** The median bytes of host memory a decode step fed (steps without prefill) while decoding 8 tokens after a prompt. */
async function hostBytesPerDecodeStep(engine: EngineClient, promptLength: number, vocab: number): Promise<number> {
  const fed: number[] = [];
  engine.onStep = (s) => void (s.prefillRows === 0 && s.decodeRows > 0 && fed.push(s.hostBytesIn));
  try {
    const prompt = Array.from({ length: promptLength }, (_, i) => (i * 7919 + 11) % vocab);
    await engine.generate({ promptIds: prompt, maxTokens: 8, ignoreEos: true }).result;
  } finally {
    engine.onStep = undefined;
  }
  return median(fed);
}

function speedupTargets(p: Precisions) {
  return {
    // With the cache on a GPU provider's device, a step's uploads do not grow with the context.
    ...(p.ep === 'cpu'
      ? {}
      : { host_bytes_per_step_flat: { target: 'ctx512 <= ctx16', met: p.fed.long <= p.fed.short } }),
    int8_speedup: { target: '>= 1.7', met: p.tps.int8 / p.tps.none >= 1.7 },
    int4_speedup: { target: '>= 2.5', met: p.tps.int4 / p.tps.none >= 2.5 },
    ...Object.fromEntries(
      (['none', 'int8', 'int4'] as const).map((q) => [
        `b16_over_b1_${q === 'none' ? 'f32' : q}`,
        { target: '>= 6', met: p.tps16[q] / p.tps[q] >= 6 },
      ]),
    ),
  };
}

/**
 * Aggregate decode tokens/s of requests started together: tokens after each one's first (of the
 * requests `counted` picks by adapter, all by default).
 */
export async function decodeRateOf(
  engine: EngineClient,
  adapters: Array<string | undefined>,
  tokens: number,
  prompt: number[],
  counted: (adapter: string | undefined) => boolean = () => true,
  /** More fields of each request (sampling, response_format). */
  fields: Partial<GenerateRequest> = {},
): Promise<number> {
  const generations = engine.generateMany(
    adapters.map((adapter) => ({ promptIds: prompt, adapter, maxTokens: tokens, ignoreEos: true, ...fields })),
  );
  const spans = await Promise.all(
    generations.map(async (g) => {
      let first = 0;
      let last = 0;
      let n = 0;
      for await (const _ of g) {
        last = performance.now();
        if (n++ === 0) first = last;
      }
      return { first, last, tokens: n - 1 };
    }),
  ).then((all) => all.filter((_, i) => counted(adapters[i])));
  const start = Math.min(...spans.map((s) => s.first));
  const end = Math.max(...spans.map((s) => s.last));
  return spans.reduce((a, s) => a + s.tokens, 0) / ((end - start) / 1000);
}

/** Runs a and b alternately `rounds` times; the median result of each. */
async function alternate(
  a: () => Promise<number>,
  b: () => Promise<number>,
  rounds: number,
): Promise<[number, number]> {
  const as: number[] = [];
  const bs: number[] = [];
  for (let k = 0; k < rounds; k++) {
    as.push(await a());
    bs.push(await b());
  }
  return [median(as), median(bs)];
}

export function median(xs: number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

export function round(x: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
