import { describe, expect, it } from 'vitest';
import type { ModelConfig } from '../../src/engine/model/config.ts';
import { KvCache } from '../../src/engine/runtime/kv-cache.ts';

const config: ModelConfig = {
  architecture: 'gpt2',
  vocabSize: 10,
  hiddenSize: 6,
  numLayers: 2,
  numHeads: 2,
  numKvHeads: 2,
  headDim: 3,
  intermediateSize: 8,
  maxPositions: 300,
  normEps: 1e-5,
  tiedEmbeddings: true,
};
const { numLayers: layers, numKvHeads: heads, headDim: hd } = config;

/** A distinct non-zero number per (layer, row, head, position, dim); values store its negative. */
const code = (l: number, row: number, h: number, t: number, i: number) =>
  (((l * 8 + row) * heads + h) * 300 + t) * hd + i + 1;

/** Writes the key and value of every position in [from, to) of a row, in every layer. */
function fill(cache: KvCache, row: number, from: number, to: number) {
  for (let l = 0; l < layers; l++) {
    for (let t = from; t < to; t++) {
      const k = new Float32Array(heads * hd).map((_, j) => code(l, row, Math.floor(j / hd), t, j % hd));
      cache.write(
        l,
        row,
        t,
        k,
        k.map((x) => -x),
        0,
      );
    }
  }
}

/** What layer l of rows [0, rows) must hold: the codes of `stored` (row -> positions written), zeros elsewhere. */
function expected(l: number, rows: number, capacity: number, stored: Map<number, number>) {
  const keys = new Float32Array(rows * heads * hd * capacity);
  const values = new Float32Array(keys.length);
  for (const [row, length] of stored) {
    if (row >= rows) continue;
    for (let h = 0; h < heads; h++) {
      for (let t = 0; t < Math.min(length, capacity); t++) {
        for (let i = 0; i < hd; i++) {
          keys[((row * heads + h) * capacity + t) * hd + i] = code(l, row, h, t, i); // [row, h, t, i]
          values[((row * heads + h) * capacity + t) * hd + i] = -code(l, row, h, t, i); // [row, h, t, i]
        }
      }
    }
  }
  return { keys, values };
}

function expectHolds(cache: KvCache, rows: number, stored: Map<number, number>) {
  for (let l = 0; l < layers; l++) {
    const { keys, values } = cache.slices(l, 0, rows);
    expect({ keys, values }).toEqual(expected(l, rows, cache.capacity, stored));
  }
}

const snapshot = (cache: KvCache, row: number) =>
  Array.from({ length: layers }, (_, l) => {
    const s = cache.slices(l, row, row + 1);
    return [s.keys.slice(), s.values.slice()];
  });

describe('KV cache', () => {
  it('keeps every value at its (row, head, position) when rows and capacity grow and capacity shrinks', () => {
    const cache = new KvCache(config);
    cache.ensure(2, 10);
    expect(cache.capacity).toBe(64);
    fill(cache, 0, 0, 10);
    fill(cache, 1, 0, 7);
    const stored = new Map([
      [0, 10],
      [1, 7],
    ]);
    expectHolds(cache, 2, stored);

    cache.ensure(5, 150); // more rows and a longer capacity at once
    expect(cache.capacity).toBe(192);
    expectHolds(cache, 5, stored);
    fill(cache, 4, 0, 40);
    stored.set(4, 40);

    cache.shrink(100); // 192 positions are not twice the 128 that 100 need: kept
    expect(cache.capacity).toBe(192);
    cache.shrink(41);
    expect(cache.capacity).toBe(64);
    expectHolds(cache, 5, stored);
    expect(() => cache.ensure(5, 301)).toThrow(RangeError);
  });

  it('grows a position at a time as decoding does, in place within its memory, every value kept', () => {
    const cache = new KvCache(config);
    const stored = new Map<number, number>();
    const buffers = new Set<ArrayBufferLike>();
    for (let t = 0; t < 260; t++) {
      cache.ensure(3, t + 1);
      for (const row of [0, 2]) fill(cache, row, t, t + 1);
      stored.set(0, t + 1).set(2, t + 1);
      buffers.add(cache.slices(0, 0, 3).keys.buffer);
      if (t % 50 === 0) expectHolds(cache, 3, stored); // rows 0 and 2 written, row 1 zeros
    }
    expectHolds(cache, 3, stored);
    expect(cache.capacity).toBe(300); // in steps of 64 positions, up to the model's context: no more to attend over
    expect(buffers.size).toBeLessThanOrEqual(4); // 4 growths past the first, memory doubled only when outgrown
  });

  it('never has a capacity of 0 (WebGPU cannot bind a zero-size past tensor)', () => {
    const cache = new KvCache(config);
    cache.ensure(1, 0); // a fresh prompt: nothing cached yet
    expect(cache.capacity).toBe(64);
    expect(cache.slices(0, 0, 1).dims).toEqual([1, config.numKvHeads, 64, config.headDim]);
    cache.shrink(0);
    expect(cache.capacity).toBe(64);
  });

  it('moveRow copies and swapRows exchanges whole rows in every layer', () => {
    const cache = new KvCache(config);
    cache.ensure(3, 5);
    for (const row of [0, 1, 2]) fill(cache, row, 0, 5);
    const [row0, row1, row2] = [0, 1, 2].map((r) => snapshot(cache, r));
    expect(row0).not.toEqual(row2);

    cache.moveRow(2, 0);
    expect([0, 1, 2].map((r) => snapshot(cache, r))).toEqual([row2, row1, row2]);
    cache.swapRows(0, 1);
    expect([0, 1, 2].map((r) => snapshot(cache, r))).toEqual([row1, row2, row2]);
  });
});
