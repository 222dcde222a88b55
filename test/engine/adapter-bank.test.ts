import { describe, expect, it } from 'vitest';
import type { Adapter } from '../../src/engine/adapters/read.ts';
import { IN, loraInputs, vlmInputs } from '../../src/engine/graph/io.ts';
import type { ModelConfig } from '../../src/engine/model/config.ts';
import { AdapterBank, type Feed } from '../../src/engine/runtime/adapter-bank.ts';

const config: ModelConfig = {
  architecture: 'gpt2',
  vocabSize: 10,
  hiddenSize: 4,
  numLayers: 2,
  numHeads: 2,
  numKvHeads: 2,
  headDim: 2,
  intermediateSize: 8,
  maxPositions: 16,
  normEps: 1e-5,
  tiedEmbeddings: true,
};
const d = config.hiddenSize;
type Vlm = Extract<Adapter, { kind: 'vlm' }>;
type Lora = Extract<Adapter, { kind: 'lora' }>;

let state = 12345;
/** Reproducible floats in [-1, 1). */
const random = (n: number) =>
  Float32Array.from({ length: n }, () => ((state = (state * 16807) % 2147483647) / 2147483647) * 2 - 1);

function vlm(id: string, m: number, tasks: number): Vlm {
  const layers = Array.from({ length: config.numLayers }, () => ({
    downT: random(d * m),
    downB: random(m),
    upT: random(m * d),
    upB: random(d),
  }));
  const taskTokens = Array.from({ length: tasks }, (_, t) => `<|${id}${t}|>`);
  const taskEmbeddings = random(tasks * d);
  return { id, kind: 'vlm', manifest: {} as never, bytes: 0, bottleneck: m, layers, taskEmbeddings, taskTokens };
}

/** Targets: [layer, module, in, out]. */
function lora(id: string, rank: number, targets: Array<[number, string, number, number]>): Lora {
  const modules = targets.map(([layer, module, fanIn, out]) => ({
    layer,
    module,
    rank,
    aT: random(fanIn * rank),
    bT: random(rank * out),
  }));
  return { id, kind: 'lora', manifest: {} as never, bytes: 0, modules };
}

/** y = x W for x [n], W [n, out] (row-major), in float64. */
const times = (x: ArrayLike<number>, w: ArrayLike<number>, out: number) =>
  Array.from({ length: out }, (_, o) => Array.from(x).reduce((sum, xi, i) => sum + xi * w[i * out + o], 0));

/** The VLM block's residual delta up(ReLU(down(x))), from plain [d, m] / [m, d] matrices. */
type Floats = ArrayLike<number>;
function vlmDelta(x: Float32Array, down: Floats, downB: Floats, up: Floats, upB: Floats) {
  const m = downB.length;
  const hidden = times(x, down, m).map((h, j) => Math.max(0, h + downB[j]));
  return times(hidden, up, d).map((y, o) => y + upB[o]);
}

/** The same delta from slot `s` of the bank's feeds of layer l. */
function bankVlmDelta(feeds: Map<string, Feed>, l: number, s: number, x: Float32Array) {
  const io = vlmInputs(l);
  const m = feeds.get(io.down)!.dims[2];
  const slot = (name: string, size: number) => feeds.get(name)!.data.subarray(s * size, (s + 1) * size);
  return vlmDelta(x, slot(io.down, d * m), slot(io.downB, m), slot(io.up, m * d), slot(io.upB, d));
}

/** x A B from slot `s` of a LoRA projection's bank feeds (a [u, in, r], b [u, r, out]). */
function bankLoraDelta(feeds: Map<string, Feed>, l: number, module: string, s: number, x: Float32Array) {
  const [a, b] = [feeds.get(loraInputs(l, module).a)!, feeds.get(loraInputs(l, module).b)!];
  const [fanIn, r, out] = [a.dims[1], a.dims[2], b.dims[2]];
  const slotA = a.data.subarray(s * fanIn * r, (s + 1) * fanIn * r);
  const slotB = b.data.subarray(s * r * out, (s + 1) * r * out);
  return times(times(x, slotA, r), slotB, out);
}

describe('adapter bank', () => {
  it('zero-pads a smaller VLM bottleneck and task-token count exactly', () => {
    const bank = new AdapterBank(config);
    const [small, large] = [vlm('small', 2, 1), vlm('large', 3, 2)];
    bank.acquire(small);
    bank.acquire(large);
    const feeds = bank.feeds();
    expect(feeds.get(vlmInputs(0).down)!.dims).toEqual([2, d, 3]);
    const s = bank.slotOf('small').slot;
    for (let l = 0; l < config.numLayers; l++) {
      const x = random(d);
      const own = small.layers[l];
      expect(bankVlmDelta(feeds, l, s, x)).toEqual(vlmDelta(x, own.downT, own.downB, own.upT, own.upB));
    }
    // Task tokens: [row 0 (zeros), small's 2 rows, large's 2 rows]; small's second row is padding.
    expect(bank.taskColumns).toBe(2);
    const rows = feeds.get(IN.taskEmbeddings)!;
    expect(rows.dims).toEqual([5, d]);
    const row = (i: number) => Array.from(rows.data.subarray(i * d, (i + 1) * d));
    expect(row(1 + 2 * s)).toEqual(Array.from(small.taskEmbeddings));
    expect(row(2 + 2 * s)).toEqual([0, 0, 0, 0]);
  });

  it('zero-pads a smaller LoRA rank exactly, and a projection an adapter leaves alone adds nothing', () => {
    const bank = new AdapterBank(config);
    const small = lora('small', 2, [
      [0, 'attn.c_attn', d, 3 * d],
      [1, 'mlp.c_fc', d, 8],
    ]);
    const large = lora('large', 4, [[0, 'attn.c_attn', d, 3 * d]]);
    bank.acquire(small);
    bank.acquire(large);
    const feeds = bank.feeds();
    expect(feeds.get(loraInputs(0, 'attn.c_attn').a)!.dims).toEqual([2, d, 4]);
    expect(feeds.get(loraInputs(0, 'attn.c_proj').a)!.dims).toEqual([2, d, 0]); // no adapter: rank 0
    const x = random(d);
    const own = small.modules[0];
    const unpadded = times(times(x, own.aT, 2), own.bT, 3 * d);
    expect(bankLoraDelta(feeds, 0, 'attn.c_attn', bank.slotOf('small').slot, x)).toEqual(unpadded);
    expect(bankLoraDelta(feeds, 1, 'mlp.c_fc', bank.slotOf('large').slot, x)).toEqual(new Array(8).fill(0));
  });

  it('keeps slots compact: the last slot fills a released one, and a new adapter takes the next', () => {
    const bank = new AdapterBank(config);
    // c (bottleneck 2) moves into a's slot (3) while b keeps the bank at 3: a's values must not show through.
    const [a, b, c, e] = [vlm('a', 3, 0), vlm('b', 3, 0), vlm('c', 2, 0), vlm('e', 2, 0)];
    for (const adapter of [a, b, c, b]) bank.acquire(adapter);
    bank.release('b'); // b still has a row
    bank.release('a');
    expect([bank.slotOf('c').slot, bank.slotOf('b').slot, bank.vlmSlots]).toEqual([0, 1, 2]);
    expect(() => bank.slotOf('a')).toThrow(/not in the bank/);
    bank.acquire(e);
    expect(bank.slotOf('e').slot).toBe(2);
    // Each reused slot holds exactly its new adapter.
    const x = random(d);
    for (const [adapter, s] of [
      [c, 0],
      [e, 2],
    ] as const) {
      const own = adapter.layers[1];
      expect(bankVlmDelta(bank.feeds(), 1, s, x)).toEqual(vlmDelta(x, own.downT, own.downB, own.upT, own.upB));
    }
  });

  it('an emptied bank keeps its layout, so the next adapter of the same size is written in place', () => {
    const bank = new AdapterBank(config);
    const down = () => bank.feeds().get(vlmInputs(0).down)!;
    bank.acquire(vlm('first', 3, 1));
    const buffer = down().data.buffer;
    bank.release('first');
    expect(down().dims).toEqual([0, d, 3]);
    bank.acquire(vlm('same', 3, 1));
    expect(down().data.buffer).toBe(buffer); // no relayout
    bank.release('same');
    bank.acquire(vlm('smaller', 2, 1));
    expect(down().dims).toEqual([1, d, 2]);
    expect(down().data.buffer).not.toBe(buffer);
  });

  it('adapters on different shelves pad only to their own shelf; regroup moves them, exactly', () => {
    const bank = new AdapterBank(config);
    const [small, large] = [vlm('small', 2, 1), vlm('large', 40, 0)];
    bank.acquire(small, 7);
    bank.acquire(large, 15);
    const down = (shelf: number) => bank.shelf(shelf).feeds().get(vlmInputs(0).down)!.dims;
    expect([down(7), down(15), bank.slotOf('large')]).toEqual([
      [1, d, 2], // the small adapter's shelf is not padded to the large one's bottleneck
      [1, d, 40],
      { shelf: 15, kind: 'vlm', slot: 0, taskTokens: 0 },
    ]);
    expect([bank.shelf(7).taskColumns, bank.shelf(15).taskColumns]).toEqual([1, 0]);
    bank.regroup(new Map([['large', 7]]));
    expect([down(7), bank.slotOf('large').shelf, bank.shelf(15).vlmSlots]).toEqual([[2, d, 40], 7, 0]);
    const x = random(d);
    for (const adapter of [small, large]) {
      const own = adapter.layers[1];
      const s = bank.slotOf(adapter.id).slot;
      const delta = bankVlmDelta(bank.shelf(7).feeds(), 1, s, x);
      expect(delta).toEqual(vlmDelta(x, own.downT, own.downB, own.upT, own.upB));
    }
    bank.release('small');
    bank.release('large');
    expect(() => bank.slotOf('large')).toThrow(/not in the bank/);
  });
});
