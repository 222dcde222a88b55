import ort from 'onnxruntime-node';
import type { ModelConfig } from '../model/config.ts';
import type { WeightSource } from '../weights/stored.ts';
import { FLOAT32, type WeightFormat } from '../weights/quantize.ts';
import { buildDecoderGraph } from '../graph/build.ts';
import type { BuiltGraph, EncodedGraph } from '../graph/onnx.ts';
import { ALL_FEATURES, type GraphFeatures } from '../graph/adapters.ts';
import { IN, LOGITS, presentOutputs, type KvPlacement } from '../graph/io.ts';
import { AdapterBank } from './adapter-bank.ts';
import { DeviceBanks } from './device-banks.ts';
import { DeviceKvCache } from './device-kv-cache.ts';
import { KvCache, type RunnerKvCache } from './kv-cache.ts';
import { createSession, resolveProvider } from './session.ts';
import type { ExecutionProvider, ProviderChoice } from './providers.ts';

/** One row of a run: new tokens of a sequence whose first `position` tokens are in the cache. */
export interface RunRow {
  /** Cache row; the rows of one run must be consecutive and ascending. */
  row: number;
  tokens: readonly number[];
  position: number;
  /** Id of an adapter in the bank, or undefined for the base model. */
  adapter?: string;
  /** Return the logits after every new token (scoring text), not only after the last. */
  everyPosition?: boolean;
}

export interface RunnerOptions {
  ep?: ProviderChoice;
  threads?: number;
  features?: GraphFeatures;
  format?: WeightFormat;
  /** Supplies the weights (e.g. from the converted-weights cache); default: made from `weights`. */
  weightBytes?: (graph: BuiltGraph) => Omit<EncodedGraph, 'model'>;
  /** Repack the weights for batched GEMM at creation (default); see prepackWeights(). */
  prepack?: boolean;
  /** Where the KV cache lives; default: on the device for a GPU provider (WebGPU), else the host. */
  kv?: KvPlacement;
}

/** A shelf key no adapter is ever on. */
const NO_SHELF = -1;

class InvalidTokenError extends RangeError {
  override name = 'InvalidTokenError';
}

/**
 * Runs the decoder graph over rows of different lengths and adapters: builds the feeds (ids,
 * positions, past lengths, adapter grouping), runs the session, stores the new keys/values in
 * the cache, and returns each row's last-token logits (base vocabulary + its task tokens).
 */
export class ModelRunner {
  readonly cache: RunnerKvCache;
  readonly bank: AdapterBank;
  /** Bytes of the runs' feeds in host memory so far; see hostBytesIn. */
  private fedBytes = 0;
  /** 'device': the banks' copies in the provider's memory. */
  private readonly deviceBanks?: DeviceBanks;

  private constructor(
    private readonly session: ort.InferenceSession,
    readonly config: ModelConfig,
    readonly ep: ExecutionProvider,
    readonly features: GraphFeatures,
    readonly format: WeightFormat,
    /** Whether onnxruntime repacked the weights for its GEMM kernels (see ModelRunner.create's `prepack`). */
    readonly prepacked: boolean,
    /** Where the KV cache lives (graph/io.ts). */
    readonly kv: KvPlacement,
  ) {
    this.cache = kv === 'device' ? new DeviceKvCache(config, ep) : new KvCache(config);
    this.bank = new AdapterBank(config, features);
    if (kv === 'device') this.deviceBanks = new DeviceBanks(ep);
  }

  static async create(config: ModelConfig, weights: WeightSource, opts: RunnerOptions = {}): Promise<ModelRunner> {
    const features = opts.features ?? ALL_FEATURES;
    const format = opts.format ?? FLOAT32;
    const choice = await resolveProvider(opts.ep ?? 'cpu');
    const kv = opts.kv ?? (choice === 'webgpu' ? 'device' : 'host');
    const built = buildDecoderGraph(config, weights, features, format, kv);
    const graph = opts.weightBytes ? { model: built.model, ...opts.weightBytes(built) } : built;
    const prepack = opts.prepack ?? true;
    // 'device': the cache's outputs stay in the provider's memory.
    const deviceOutputs = kv === 'device' ? presentOutputs(config.numLayers) : [];
    const { session, ep } = await createSession(graph, choice, { threads: opts.threads, prepack, deviceOutputs });
    return new ModelRunner(session, config, ep, features, format, prepack, kv);
  }

  async run(rows: readonly RunRow[]): Promise<Float32Array[]> {
    const c = this.config;
    const B = rows.length;
    if (B === 0) return [];
    const r0 = rows[0].row;
    rows.forEach((r, i) => {
      if (r.row !== r0 + i) throw new Error('rows of a run must be consecutive cache rows');
      if (r.tokens.length === 0) throw new Error('every row needs at least one token');
    });
    const S = Math.max(...rows.map((r) => r.tokens.length));
    const N = B * S;
    const V = c.vocabSize;
    // The rows' adapters share one shelf of the bank (the policy plans a run per shelf); rows of
    // the base model alone feed an empty one.
    const slots = rows.map((r) => (r.adapter === undefined ? undefined : this.bank.slotOf(r.adapter)));
    const shelfKey = slots.find((s) => s)?.shelf;
    if (slots.some((s) => s && s.shelf !== shelfKey)) throw new Error('the rows of a run must share one bank shelf');
    const shelf = this.bank.shelf(shelfKey ?? NO_SHELF);
    const K = shelf.taskColumns;

    const inputIds = new BigInt64Array(N);
    const taskIndex = new BigInt64Array(N);
    const positionIds = new BigInt64Array(N);
    // The graph makes the attention bias from these (io.ts): nothing here grows with the context.
    const pastLength = BigInt64Array.from(rows, (r) => BigInt(r.position));
    // The tokens whose logits come out: each row's last, or all of a row's with everyPosition.
    // Row b's come out at firstScored[b] onwards.
    const scoredCount = rows.map((r) => (r.everyPosition ? r.tokens.length : 1));
    const firstScored: number[] = [];
    const L = scoredCount.reduce((at, n) => (firstScored.push(at), at + n), 0);
    const lastIndex = new BigInt64Array(L);
    rows.forEach((r, b) => {
      for (let i = 0; i < scoredCount[b]; i++)
        lastIndex[firstScored[b] + i] = BigInt(b * S + r.tokens.length - scoredCount[b] + i);
    });
    rows.forEach((r, b) => {
      const slot = slots[b];
      for (let j = 0; j < S; j++) {
        const n = b * S + j;
        const real = j < r.tokens.length;
        positionIds[n] = BigInt(r.position + (real ? j : 0));
        if (!real) continue;
        const id = r.tokens[j];
        if (Number.isInteger(id) && id >= 0 && id < V) inputIds[n] = BigInt(id);
        else if (slot?.kind === 'vlm' && id >= V && id < V + slot.taskTokens)
          taskIndex[n] = BigInt(1 + slot.slot * K + id - V);
        else
          throw new InvalidTokenError(
            `token id ${id} is outside the vocabulary ` +
              `(${V}${slot?.taskTokens ? ` + ${slot.taskTokens} task tokens` : ''})`,
          );
      }
    });

    const feeds: Record<string, ort.Tensor> = {
      [IN.inputIds]: new ort.Tensor('int64', inputIds, [B, S]),
      [IN.positionIds]: new ort.Tensor('int64', positionIds, [B, S]),
      [IN.pastLength]: new ort.Tensor('int64', pastLength, [B]),
      [IN.lastIndex]: new ort.Tensor('int64', lastIndex, [L]),
    };
    const int64 = (name: string, data: BigInt64Array, dims: number[]) =>
      (feeds[name] = new ort.Tensor('int64', data, dims));
    const slotIn = (kind: 'vlm' | 'lora') => slots.map((s) => (s?.kind === kind ? s.slot : -1));
    const realTokens = (b: number) => Array.from({ length: rows[b].tokens.length }, (_, j) => b * S + j);
    if (this.features.vlm) {
      const vlm = group(N, shelf.vlmSlots, slotIn('vlm'), realTokens);
      const head = group(L, shelf.vlmSlots, slotIn('vlm'), (b) =>
        Array.from({ length: scoredCount[b] }, (_, i) => firstScored[b] + i),
      );
      int64(IN.taskIndex, taskIndex, [B, S]);
      int64(IN.vlmGather, vlm.gather, vlm.dims);
      int64(IN.vlmScatter, vlm.scatter, [N]);
      int64(IN.headGather, head.gather, head.dims);
      int64(IN.headScatter, head.scatter, [L]);
    }
    if (this.features.lora) {
      const lora = group(N, shelf.loraSlots, slotIn('lora'), realTokens);
      int64(IN.loraGather, lora.gather, lora.dims);
      int64(IN.loraScatter, lora.scatter, [N]);
    }
    if (this.deviceBanks)
      for (const [name, t] of await this.deviceBanks.feeds(shelf, this.bank.liveShelves())) feeds[name] = t;
    else for (const [name, f] of shelf.feeds()) feeds[name] = new ort.Tensor('float32', f.data, f.dims);
    await this.cache.prepare(feeds, rows, S);
    for (const t of Object.values(feeds))
      if (t.location === 'cpu') this.fedBytes += (t.data as ArrayBufferView).byteLength;
    const out = await this.session.run(feeds);
    this.cache.store(out, rows, S);
    const logits = out[LOGITS].data as Float32Array;
    const width = V + K;
    return rows.map((r, b) => {
      const own = V + (slots[b]?.taskTokens ?? 0); // the base vocabulary and the row's own task tokens
      const at = firstScored[b] * width;
      if (!r.everyPosition) return logits.subarray(at, at + own);
      const all = new Float32Array(r.tokens.length * own);
      for (let i = 0; i < r.tokens.length; i++) all.set(logits.subarray(at + i * width, at + i * width + own), i * own);
      return all;
    });
  }

  /**
   * Bytes of host memory fed to runs so far, bank uploads included: what a GPU provider copies to its
   * device (on the CPU provider nothing is copied). A 'device' runner's decode step feeds a few ids
   * and indices a row, whatever the context.
   */
  get hostBytesIn(): number {
    return this.fedBytes + (this.deviceBanks?.uploadedBytes ?? 0);
  }

  async release(): Promise<void> {
    if (this.cache instanceof DeviceKvCache) await this.cache.release();
    await this.deviceBanks?.release();
    await this.session.release();
  }
}

/**
 * Groups items (tokens or rows) by adapter slot for the bank tensors: gather [U, R] lists each
 * slot's items (padded with item 0), scatter [items] points each item at its place in the flattened
 * [U*R] result, or at U*R (a zero row) when its row has no adapter of this kind.
 */
function group(items: number, slots: number, rowSlot: number[], itemsOf: (row: number) => number[]) {
  const bySlot: number[][] = Array.from({ length: slots }, () => []);
  rowSlot.forEach((s, row) => {
    if (s >= 0) bySlot[s].push(...itemsOf(row));
  });
  const R = Math.max(1, ...bySlot.map((x) => x.length));
  const gather = new BigInt64Array(slots * R);
  const scatter = new BigInt64Array(items).fill(BigInt(slots * R));
  bySlot.forEach((list, s) =>
    list.forEach((item, i) => {
      gather[s * R + i] = BigInt(item);
      scatter[item] = BigInt(s * R + i);
    }),
  );
  return { gather, scatter, dims: [slots, R] };
}
