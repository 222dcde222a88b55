import ort from 'onnxruntime-node';
import type { ModelConfig } from '../model/config.ts';
import type { WeightSource } from '../weights/stored.ts';
import { FLOAT32, type WeightFormat } from '../weights/quantize.ts';
import { buildDecoderGraph } from '../graph/build.ts';
import type { BuiltGraph, EncodedGraph } from '../graph/onnx.ts';
import { ALL_FEATURES, type GraphFeatures } from '../graph/adapters.ts';
import { IN, LOGITS, NEW_KV, pastKey, pastValue } from '../graph/io.ts';
import { AdapterBank } from './adapter-bank.ts';
import { KvCache } from './kv-cache.ts';
import { createSession } from './session.ts';
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
  readonly cache: KvCache;
  readonly bank: AdapterBank;

  private constructor(
    private readonly session: ort.InferenceSession,
    readonly config: ModelConfig,
    readonly ep: ExecutionProvider,
    readonly features: GraphFeatures,
    readonly format: WeightFormat,
    /** Whether onnxruntime repacked the weights for its GEMM kernels (see ModelRunner.create's `prepack`). */
    readonly prepacked: boolean,
  ) {
    this.cache = new KvCache(config);
    this.bank = new AdapterBank(config, features);
  }

  static async create(
    config: ModelConfig,
    weights: WeightSource,
    opts: {
      ep?: ProviderChoice;
      threads?: number;
      features?: GraphFeatures;
      format?: WeightFormat;
      /** Supplies the weights (e.g. from the converted-weights cache); default: made from `weights`. */
      weightBytes?: (graph: BuiltGraph) => Omit<EncodedGraph, 'model'>;
      /** Repack the weights for batched GEMM at creation (default); see prepackWeights(). */
      prepack?: boolean;
    } = {},
  ): Promise<ModelRunner> {
    const features = opts.features ?? ALL_FEATURES;
    const format = opts.format ?? FLOAT32;
    const built = buildDecoderGraph(config, weights, features, format);
    const graph = opts.weightBytes ? { model: built.model, ...opts.weightBytes(built) } : built;
    const prepack = opts.prepack ?? true;
    const { session, ep } = await createSession(graph, opts.ep ?? 'cpu', opts.threads, prepack);
    return new ModelRunner(session, config, ep, features, format, prepack);
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
    // The graph attends over the whole capacity (masked), so grow it for the past only; room for
    // the new tokens is made after the run. A fresh prompt attends over masked positions only.
    this.cache.ensure(r0 + B, Math.max(...rows.map((r) => r.position)));
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
    for (const [name, f] of shelf.feeds()) feeds[name] = new ort.Tensor('float32', f.data, f.dims);
    for (let l = 0; l < c.numLayers; l++) {
      const s = this.cache.slices(l, r0, r0 + B);
      feeds[pastKey(l)] = new ort.Tensor('float32', s.keys, s.dims);
      feeds[pastValue(l)] = new ort.Tensor('float32', s.values, s.dims);
    }

    const out = await this.session.run(feeds);

    // The new keys and values come out head-major, [B, Hkv, S, hd] per layer and kind (io.ts).
    const { numKvHeads: kvh, headDim: hd } = c;
    this.cache.ensure(r0 + B, Math.max(...rows.map((r) => r.position + r.tokens.length)));
    const kv = out[NEW_KV].data as Float32Array; // [2 * layers * B, Hkv, S, hd], layer by layer: keys, values
    const block = B * kvh * S * hd;
    for (let l = 0; l < c.numLayers; l++) {
      const k = kv.subarray(2 * l * block, (2 * l + 1) * block);
      const v = kv.subarray((2 * l + 1) * block, (2 * l + 2) * block);
      rows.forEach((r, b) => {
        for (let j = 0; j < r.tokens.length; j++)
          this.cache.write(l, r.row, r.position + j, k, v, (b * kvh * S + j) * hd, S * hd);
      });
    }
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

  async release(): Promise<void> {
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
