import ort from 'onnxruntime-node';
import type { ModelConfig } from '../model/config.ts';
import { GraphBuilder } from '../graph/onnx.ts';
import { CACHE_IN, pastKey, pastValue, presentOutputs } from '../graph/io.ts';
import { grownShape, shrunkCapacity, type CachedRow, type RunnerKvCache } from './kv-cache.ts';
import { createSession } from './session.ts';
import type { ExecutionProvider } from './providers.ts';

/** A queued change to the cache tensors: a new shape, or rows copied (`from[i]` over `to[i]`, all read first). */
type Change = { rows: number; capacity: number } | { from: number[]; to: number[] };

/**
 * The KV cache in onnxruntime tensors, in the execution provider's memory (GPU memory on WebGPU):
 * per layer, keys and values [rows + 1, Hkv, capacity, hd] of every cache row, fed whole to a
 * 'device' graph (io.ts), which reads its run's rows and returns the cache with their new positions
 * written; that output is the next run's input. So a step sends token ids and a few indices and
 * reads back the logits, whatever the context: the cache never crosses the bus.
 *
 * The last row is spare: a run's padding tokens (rows shorter than the run) write there, so every
 * write has a place whatever the positions. Resizes (Pad, which also crops) and row copies (Gather,
 * ScatterND) are small graphs on the same provider. The scheduler's row operations are synchronous
 * calls, so they are queued and applied in order before the next run.
 */
export class DeviceKvCache implements RunnerKvCache {
  /** Keys and values of each layer in turn: [keys 0, values 0, keys 1, ...]. */
  private tensors: ort.Tensor[] = [];
  /** The shape the tensors have, and the one they will have once `changes` are applied. */
  private held = { rows: 0, capacity: 0 };
  private rowCapacity = 0;
  capacity = 0;
  private changes: Change[] = [];
  private helpers?: Promise<{ resize: ort.InferenceSession; copy: ort.InferenceSession }>;

  constructor(
    private readonly c: ModelConfig,
    private readonly ep: ExecutionProvider,
  ) {}

  /** Makes room (queued) for `rows` rows of at least `length` positions. */
  ensure(rows: number, length: number): void {
    const shape = grownShape({ rows: this.rowCapacity, capacity: this.capacity }, rows, length, this.c.maxPositions);
    if (shape) this.resize(shape.rows, shape.capacity);
  }

  shrink(length: number): void {
    const capacity = shrunkCapacity(this.capacity, length, this.c.maxPositions);
    if (capacity !== undefined) this.resize(this.rowCapacity, capacity);
  }

  private resize(rows: number, capacity: number): void {
    this.changes.push({ rows, capacity });
    this.rowCapacity = rows;
    this.capacity = capacity;
  }

  moveRow(from: number, to: number): void {
    if (from !== to) this.changes.push({ from: [from], to: [to] });
  }

  copyRow(from: number, to: number): void {
    this.ensure(to + 1, this.capacity);
    this.moveRow(from, to);
  }

  swapRows(a: number, b: number): void {
    if (a !== b) this.changes.push({ from: [a, b], to: [b, a] });
  }

  clear(): void {
    for (const t of this.tensors) t.dispose();
    this.tensors = [];
    this.changes = [];
    this.held = { rows: 0, capacity: 0 };
    this.rowCapacity = 0;
    this.capacity = 0;
  }

  /** Room for every new position (the graph writes them), then the queued changes, then the feeds. */
  async prepare(feeds: Record<string, ort.Tensor>, rows: readonly CachedRow[], S: number): Promise<void> {
    const { numLayers, numKvHeads: kvh } = this.c;
    const B = rows.length;
    this.ensure(rows[0].row + B, Math.max(...rows.map((r) => r.position + r.tokens.length)));
    await this.apply();
    const spare = this.held.rows - 1;
    const index = new BigInt64Array(B * kvh * S * 3);
    rows.forEach((r, b) => {
      for (let h = 0; h < kvh; h++)
        for (let j = 0; j < S; j++) {
          const at = ((b * kvh + h) * S + j) * 3;
          const real = j < r.tokens.length;
          index[at] = BigInt(real ? r.row : spare);
          index[at + 1] = BigInt(h);
          index[at + 2] = BigInt(real ? r.position + j : j);
        }
    });
    feeds[CACHE_IN.rows] = new ort.Tensor(
      'int64',
      BigInt64Array.from(rows, (r) => BigInt(r.row)),
      [B],
    );
    feeds[CACHE_IN.index] = new ort.Tensor('int64', index, [B, kvh, S, 3]);
    for (let l = 0; l < numLayers; l++) {
      feeds[pastKey(l)] = this.tensors[2 * l];
      feeds[pastValue(l)] = this.tensors[2 * l + 1];
    }
  }

  /** The run's outputs become the cache; the tensors they were made from are freed. */
  store(out: ort.InferenceSession.ReturnType): void {
    this.replace(presentOutputs(this.c.numLayers).map((name) => out[name]));
  }

  private replace(next: ort.OnnxValue[]): void {
    for (const t of this.tensors) t.dispose();
    this.tensors = next as ort.Tensor[];
  }

  /** Applies the queued changes in order, each as one run of a helper graph over every tensor. */
  private async apply(): Promise<void> {
    if (this.changes.length === 0) return;
    const { resize, copy } = await (this.helpers ??= this.makeHelpers());
    const feedsOf = (extra: Record<string, ort.Tensor>) => {
      const feeds: Record<string, ort.Tensor> = { ...extra };
      this.tensors.forEach((t, i) => (feeds[`x.${i}`] = t));
      return feeds;
    };
    const outputs = (out: ort.InferenceSession.ReturnType) => this.tensors.map((_, i) => out[`y.${i}`]);
    for (const change of this.changes.splice(0)) {
      if ('rows' in change) {
        if (this.tensors.length === 0) this.allocate();
        const [rows, capacity] = [change.rows + 1, change.capacity]; // + the spare row
        // Pad's pads: the four axes' starts, then their ends; negative ends crop.
        const pads = [0, 0, 0, 0, rows - this.held.rows, 0, capacity - this.held.capacity, 0].map(BigInt);
        const out = await resize.run(feedsOf({ pads: new ort.Tensor('int64', BigInt64Array.from(pads), [8]) }));
        this.replace(outputs(out));
        this.held = { rows, capacity };
      } else if (this.tensors.length > 0) {
        const ids = (xs: number[]) => new ort.Tensor('int64', BigInt64Array.from(xs, BigInt), [xs.length]);
        this.replace(outputs(await copy.run(feedsOf({ from: ids(change.from), to: ids(change.to) }))));
      }
    }
  }

  /** Host zeros of one row and one position, which the first resize pads to the cache's shape. */
  private allocate(): void {
    const { numKvHeads: kvh, headDim: hd } = this.c;
    this.tensors = Array.from(
      { length: 2 * this.c.numLayers },
      () => new ort.Tensor('float32', new Float32Array(kvh * hd), [1, kvh, 1, hd]),
    );
    this.held = { rows: 1, capacity: 1 };
  }

  /** The resize and row-copy graphs, over every layer's keys and values at once. */
  private async makeHelpers() {
    const { numKvHeads: kvh, headDim: hd } = this.c;
    const n = 2 * this.c.numLayers;
    const helper = (extra: Array<[string, (string | number)[]]>, body: (g: GraphBuilder, x: string) => string) => {
      const g = new GraphBuilder();
      for (const [name, dims] of extra) g.input(name, 'int64', dims);
      for (let i = 0; i < n; i++) {
        g.input(`x.${i}`, 'float32', ['R', kvh, 'P', hd]);
        g.output(body(g, `x.${i}`), `y.${i}`, 'float32', ['R2', kvh, 'P2', hd]);
      }
      const outputs = Array.from({ length: n }, (_, i) => `y.${i}`);
      return createSession(g.encode('kv-cache'), this.ep, { threads: 1, deviceOutputs: outputs }).then(
        (s) => s.session,
      );
    };
    const [resize, copy] = await Promise.all([
      helper([['pads', [8]]], (g, x) => g.op('Pad', [x, 'pads'])),
      helper(
        [
          ['from', ['K']],
          ['to', ['K']],
        ],
        (g, x) => g.op('ScatterND', [x, g.unsqueeze('to', [1]), g.gather(x, 'from')]),
      ),
    ]);
    return { resize, copy };
  }

  /** Frees the tensors and the helper graphs. */
  async release(): Promise<void> {
    this.clear();
    const helpers = await this.helpers;
    await Promise.all([helpers?.resize.release(), helpers?.copy.release()]);
  }
}
