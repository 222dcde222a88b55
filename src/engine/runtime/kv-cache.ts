import ort from 'onnxruntime-node';
import type { ModelConfig } from '../model/config.ts';
import { NEW_KV, pastKey, pastValue } from '../graph/io.ts';

/** What a run tells its cache of each of its rows (runner.ts's RunRow). */
export interface CachedRow {
  row: number;
  position: number;
  tokens: { length: number };
}

/**
 * What the runner and the executor need of a KV cache, wherever it lives: the row operations the
 * scheduler plans, and around each run its feeds and the storing of the new positions. KvCache keeps
 * it in JS memory ('host' graphs), DeviceKvCache in the provider's ('device' graphs).
 */
export interface RunnerKvCache {
  /** Makes room and adds the cache's inputs for a run of `rows`, right-padded to S tokens. */
  prepare(feeds: Record<string, ort.Tensor>, rows: readonly CachedRow[], S: number): void | Promise<void>;
  /** Keeps the run's new keys and values from its outputs. */
  store(out: ort.InferenceSession.ReturnType, rows: readonly CachedRow[], S: number): void;
  moveRow(from: number, to: number): void;
  copyRow(from: number, to: number): void;
  swapRows(a: number, b: number): void;
  shrink(length: number): void;
  clear(): void;
}

/** Capacity grows in steps of GROW positions; rows grow by half again. */
const GROW = 64;

/** A cache's shape: its rows, and the positions each row holds. */
export interface CacheShape {
  rows: number;
  capacity: number;
}

/**
 * The shape that holds `rows` rows of `length` positions, grown from `now`; undefined when `now`
 * holds them. Never a capacity of 0: a zero-size past tensor cannot be bound on WebGPU (its MatMul
 * fails in CreateBindGroup), so a fresh prompt attends over GROW masked positions instead of none.
 */
export function grownShape(
  now: CacheShape,
  rows: number,
  length: number,
  maxPositions: number,
): CacheShape | undefined {
  if (length > maxPositions) throw new RangeError(`position ${length} exceeds the model's context of ${maxPositions}`);
  const needLength = Math.max(length, 1) > now.capacity;
  const needRows = rows > now.rows;
  if (!needLength && !needRows) return undefined;
  return {
    rows: needRows ? Math.max(rows, Math.ceil(now.rows * 1.5)) : now.rows,
    capacity: needLength ? capacityFor(length, maxPositions) : now.capacity,
  };
}

/** The capacity to shrink to so as to hold `length` positions; undefined unless it at least halves. */
export function shrunkCapacity(now: number, length: number, maxPositions: number): number | undefined {
  const capacity = capacityFor(length, maxPositions);
  return capacity <= now / 2 ? capacity : undefined;
}

function capacityFor(length: number, maxPositions: number): number {
  return Math.min(maxPositions, Math.ceil(Math.max(length, 1) / GROW) * GROW);
}

/**
 * The KV cache, owned by JS and fed to every run as graph inputs (onnxruntime-node does not copy
 * inputs, but copies every output, so the graph only ever outputs the new positions).
 *
 * Per layer, keys and values are [rows, Hkv, capacity, hd] (BNSH, as onnxruntime's attention
 * kernels take a past): a token's keys are hd contiguous floats per head, written as one copy. A run
 * over rows [r0, r1) feeds the contiguous slice of those rows.
 */
export class KvCache implements RunnerKvCache {
  private keys: Float32Array[] = [];
  private values: Float32Array[] = [];
  private rowCapacity = 0;
  /** Positions each row can hold (the P dimension fed to the graph). */
  capacity = 0;

  constructor(private readonly c: ModelConfig) {}

  private get kvDim(): number {
    return this.c.numKvHeads * this.c.headDim;
  }

  /** Floats one row takes in one layer's key (or value) buffer. */
  private get rowSize(): number {
    return this.kvDim * this.capacity;
  }

  /** Bytes currently allocated. */
  get bytes(): number {
    return 2 * this.c.numLayers * this.rowCapacity * this.rowSize * 4;
  }

  /** Makes room for `rows` rows of at least `length` positions, keeping what is stored. */
  ensure(rows: number, length: number): void {
    const shape = grownShape({ rows: this.rowCapacity, capacity: this.capacity }, rows, length, this.c.maxPositions);
    if (shape) this.relayout(shape.rows, shape.capacity);
  }

  /** Shrinks the position capacity (e.g. after long rows left) to hold `length` positions. */
  shrink(length: number): void {
    const capacity = shrunkCapacity(this.capacity, length, this.c.maxPositions);
    if (capacity !== undefined) this.relayout(this.rowCapacity, capacity);
  }

  private relayout(rowCapacity: number, capacity: number): void {
    const growing = this.keys.length > 0 && rowCapacity >= this.rowCapacity && capacity >= this.capacity;
    if (growing) this.widen(rowCapacity, capacity);
    else this.reallocate(rowCapacity, capacity);
    this.rowCapacity = rowCapacity;
    this.capacity = capacity;
  }

  /**
   * Grows in place: each buffer is a view of a larger ArrayBuffer (doubled when outgrown), and runs
   * of positions move to their wider stride from the last one down. Fresh buffers at every growth
   * cost their first writes' page faults, about 10 ns a float on these machines: 0.2 s every 64
   * positions for the 110M at 1,000, 2 s a step at 16 rows.
   */
  private widen(rowCapacity: number, capacity: number): void {
    const { numLayers, headDim: hd } = this.c;
    const heads = this.c.numKvHeads;
    const [oldCap, rows] = [this.capacity, this.rowCapacity];
    const size = rowCapacity * this.kvDim * capacity;
    for (let l = 0; l < numLayers; l++) {
      const keys = (this.keys[l] = roomFor(this.keys[l], size));
      const values = (this.values[l] = roomFor(this.values[l], size));
      if (capacity > oldCap) {
        // [row, h, t, i]: each (row, h) block of oldCap * hd floats moves to its wider stride.
        moveRuns(keys, rows * heads, oldCap * hd, capacity * hd);
        moveRuns(values, rows * heads, oldCap * hd, capacity * hd);
      }
      const used = rows * this.kvDim * capacity;
      keys.fill(0, used);
      values.fill(0, used);
    }
  }

  private reallocate(rowCapacity: number, capacity: number): void {
    const { numLayers, headDim: hd } = this.c;
    const heads = this.c.numKvHeads;
    const keep = Math.min(capacity, this.capacity);
    const size = rowCapacity * this.kvDim * capacity;
    for (let l = 0; l < numLayers; l++) {
      const keys = new Float32Array(size);
      const values = new Float32Array(size);
      const oldKeys = this.keys[l];
      const oldValues = this.values[l];
      if (oldKeys && keep > 0) {
        const rows = Math.min(rowCapacity, this.rowCapacity);
        // [row, h, t, i]: each (row, h) block of positions moves.
        const block = (old: Float32Array, r: number) =>
          old.subarray(r * this.capacity * hd, (r * this.capacity + keep) * hd);
        for (let r = 0; r < rows * heads; r++) {
          keys.set(block(oldKeys, r), r * capacity * hd);
          values.set(block(oldValues, r), r * capacity * hd);
        }
      }
      this.keys[l] = keys;
      this.values[l] = values;
    }
  }

  /**
   * The graph attends over the whole capacity (masked), so it grows for the past only: room for the
   * new tokens is made after the run (store). A fresh prompt attends over masked positions only.
   */
  prepare(feeds: Record<string, ort.Tensor>, rows: readonly CachedRow[]): void {
    const r0 = rows[0].row;
    const r1 = r0 + rows.length;
    this.ensure(r1, Math.max(...rows.map((r) => r.position)));
    for (let l = 0; l < this.c.numLayers; l++) {
      const s = this.slices(l, r0, r1);
      feeds[pastKey(l)] = new ort.Tensor('float32', s.keys, s.dims);
      feeds[pastValue(l)] = new ort.Tensor('float32', s.values, s.dims);
    }
  }

  /** Writes the new keys and values: NEW_KV is [2 * layers * B, Hkv, S, hd], per layer keys then values. */
  store(out: ort.InferenceSession.ReturnType, rows: readonly CachedRow[], S: number): void {
    const { numKvHeads: kvh, headDim: hd } = this.c;
    this.ensure(rows[0].row + rows.length, Math.max(...rows.map((r) => r.position + r.tokens.length)));
    const kv = out[NEW_KV].data as Float32Array;
    const block = rows.length * kvh * S * hd;
    for (let l = 0; l < this.c.numLayers; l++) {
      const k = kv.subarray(2 * l * block, (2 * l + 1) * block);
      const v = kv.subarray((2 * l + 1) * block, (2 * l + 2) * block);
      rows.forEach((r, b) => {
        for (let j = 0; j < r.tokens.length; j++)
          this.write(l, r.row, r.position + j, k, v, (b * kvh * S + j) * hd, S * hd);
      });
    }
  }

  /** The key and value slices of rows [r0, r1) of layer l, shaped for the graph. */
  slices(l: number, r0: number, r1: number): { keys: Float32Array; values: Float32Array; dims: number[] } {
    const { numKvHeads: heads, headDim: hd } = this.c;
    const n = this.rowSize;
    return {
      keys: this.keys[l].subarray(r0 * n, r1 * n),
      values: this.values[l].subarray(r0 * n, r1 * n),
      dims: [r1 - r0, heads, this.capacity, hd],
    };
  }

  /**
   * Stores the key and value of one token: head h's hd floats at `offset + h * headStride` of `k`
   * and `v` (headStride hd: token-major; S * hd: the graph's head-major [B, Hkv, S, hd] outputs).
   */
  write(
    l: number,
    row: number,
    position: number,
    k: Float32Array,
    v: Float32Array,
    offset: number,
    headStride = this.c.headDim,
  ): void {
    const { numKvHeads: heads, headDim: hd } = this.c;
    const cap = this.capacity;
    const keys = this.keys[l];
    const values = this.values[l];
    const base = row * this.rowSize;
    for (let h = 0; h < heads; h++) {
      const src = offset + h * headStride;
      const at = base + (h * cap + position) * hd;
      // A loop, not set(subarray()): hd is small, and a view per head cost more than the copy.
      for (let i = 0; i < hd; i++) {
        keys[at + i] = k[src + i];
        values[at + i] = v[src + i];
      }
    }
  }

  /** Copies row `from` over row `to` in every layer. */
  moveRow(from: number, to: number): void {
    if (from === to) return;
    const n = this.rowSize;
    for (let l = 0; l < this.c.numLayers; l++) {
      this.keys[l].copyWithin(to * n, from * n, (from + 1) * n);
      this.values[l].copyWithin(to * n, from * n, (from + 1) * n);
    }
  }

  /** Copies row `from` into row `to`, a new row if need be: a forked sequence (n > 1) shares its prompt's keys. */
  copyRow(from: number, to: number): void {
    this.ensure(to + 1, this.capacity);
    this.moveRow(from, to);
  }

  /** Exchanges two rows in every layer. */
  swapRows(a: number, b: number): void {
    if (a === b) return;
    const n = this.rowSize;
    const tmp = new Float32Array(n);
    for (const buffers of [this.keys, this.values]) {
      for (const buf of buffers) {
        tmp.set(buf.subarray(a * n, (a + 1) * n));
        buf.copyWithin(a * n, b * n, (b + 1) * n);
        buf.set(tmp, b * n);
      }
    }
  }

  /** Frees everything (when the engine goes idle). */
  clear(): void {
    this.keys = [];
    this.values = [];
    this.rowCapacity = 0;
    this.capacity = 0;
  }
}

/** A view of `size` floats holding `buffer`'s values: the same memory while it has room, else twice as much. */
function roomFor(buffer: Float32Array, size: number): Float32Array {
  if (buffer.buffer.byteLength >= size * 4) return new Float32Array(buffer.buffer, 0, size);
  const wider = new Float32Array(new ArrayBuffer(Math.max(size, 2 * buffer.length) * 4), 0, size);
  wider.set(buffer);
  return wider;
}

/**
 * Moves `runs` runs of `from` floats each, at stride `from`, to stride `to` (> from) in place, and
 * zeroes each run's new tail. From the last run down: a run only moves up, over runs already moved.
 */
function moveRuns(data: Float32Array, runs: number, from: number, to: number): void {
  for (let r = runs - 1; r >= 0; r--) {
    data.copyWithin(r * to, r * from, r * from + from);
    data.fill(0, r * to + from, (r + 1) * to);
  }
}
