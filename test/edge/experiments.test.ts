import { describe, expect, it } from 'vitest';
import { assignArm } from '../../src/experiments/assign.ts';
import { difference, interval, ratioEstimate, sampleRatioMismatch } from '../../src/experiments/stats.ts';
import { NodePool } from '../../src/edge/routing/nodes.ts';

const units = Array.from({ length: 10_000 }, (_, i) => `user-${i}`);

async function split(seed: string, arms: Array<{ name: string; weight: number }>) {
  const byUnit = new Map<string, string>();
  for (const u of units) byUnit.set(u, (await assignArm(seed, u, arms)).name);
  return byUnit;
}

describe('sticky bucketing', () => {
  it('gives a unit the same arm every time, from the seed and unit alone', async () => {
    const arms = [
      { name: 'control', weight: 50 },
      { name: 'treatment', weight: 50 },
    ];
    for (const u of units.slice(0, 200)) {
      const first = (await assignArm('exp-1', u, arms)).name;
      expect((await assignArm('exp-1', u, [...arms].reverse())).name).toBe(first);
      expect((await assignArm('exp-1', u, arms)).name).toBe(first);
    }
  });

  it('splits 10,000 units within 2 % of the weights', async () => {
    for (const weights of [
      [50, 50],
      [90, 10],
      [20, 30, 50],
    ]) {
      const arms = weights.map((weight, i) => ({ name: `arm${i}`, weight }));
      const counts = new Map<string, number>();
      for (const arm of (await split('exp-2', arms)).values()) counts.set(arm, (counts.get(arm) ?? 0) + 1);
      const total = weights.reduce((a, b) => a + b, 0);
      arms.forEach((a) =>
        expect(Math.abs((counts.get(a.name) ?? 0) / units.length - a.weight / total)).toBeLessThan(0.02),
      );
    }
  });

  it('a ramp moves only the units the ramped arm gains', async () => {
    const before = await split('exp-3', [
      { name: 'control', weight: 90 },
      { name: 'treatment', weight: 10 },
    ]);
    const after = await split('exp-3', [
      { name: 'control', weight: 80 },
      { name: 'treatment', weight: 20 },
    ]);
    let moved = 0;
    for (const u of units) {
      if (before.get(u) === after.get(u)) continue;
      moved++;
      expect([before.get(u), after.get(u)]).toEqual(['control', 'treatment']);
    }
    expect(moved / units.length).toBeGreaterThan(0.08);
    expect(moved / units.length).toBeLessThan(0.12);
  });

  it('a new arm takes units only from the others, never shuffles them', async () => {
    const before = await split('exp-4', [
      { name: 'a', weight: 50 },
      { name: 'b', weight: 50 },
    ]);
    const after = await split('exp-4', [
      { name: 'a', weight: 50 },
      { name: 'b', weight: 50 },
      { name: 'c', weight: 25 },
    ]);
    for (const u of units) if (before.get(u) !== after.get(u)) expect(after.get(u)).toBe('c');
  });
});

describe('experiment statistics', () => {
  it('the sample-ratio check flags a skewed log and passes a fair one', () => {
    expect(sampleRatioMismatch([[5020, 4980]], [[50, 50]])!.pValue).toBeGreaterThan(0.05);
    expect(sampleRatioMismatch([[5400, 4600]], [[50, 50]])!.pValue).toBeLessThan(0.001);
    expect(sampleRatioMismatch([[8980, 1020]], [[90, 10]])!.pValue).toBeGreaterThan(0.05);
    expect(sampleRatioMismatch([[9300, 700]], [[90, 10]])!.pValue).toBeLessThan(0.001);
  });

  it('unit-level means carry normal intervals; differences carry fixed and sequential intervals', () => {
    // Five units with one request each: the plain mean and s^2 / n.
    const units = (ys: number[]) => ({
      n: ys.length,
      sx: ys.length,
      sxx: ys.length,
      sy: ys.reduce((a, b) => a + b, 0),
      syy: ys.reduce((a, b) => a + b * b, 0),
      sxy: ys.reduce((a, b) => a + b, 0),
    });
    const m = ratioEstimate(units([1, 2, 3, 4, 5]));
    expect(m.mean).toBe(3);
    expect(m.variance).toBeCloseTo(2.5 / 5, 10);
    expect(interval(m)![0]).toBeCloseTo(3 - 1.96 * Math.sqrt(2.5 / 5), 2);
    const d = difference(m, ratioEstimate(units([3, 4, 5, 6, 7])));
    expect(d.diff).toBe(2);
    expect(d.ci95![0]).toBeLessThan(2);
    expect(d.cs95![0]).toBeLessThan(d.ci95![0]); // always-valid is wider than one look
    expect(d.cs95![1]).toBeGreaterThan(d.ci95![1]);
    expect(ratioEstimate(units([4])).variance).toBeNull();
  });
});

describe('rendezvous routing', () => {
  const urls = ['http://a:1', 'http://b:1', 'http://c:1', 'http://d:1'];
  const keys = Array.from({ length: 400 }, (_, i) => `adapter-${i}@1`);

  it('keeps a version on one node and spreads versions over all nodes', async () => {
    const pool = new NodePool(urls);
    const first = await Promise.all(keys.map(async (k) => (await pool.order(k))[0]));
    expect(await Promise.all(keys.map(async (k) => (await pool.order(k))[0]))).toEqual(first);
    for (const u of urls) expect(first.filter((f) => f === u).length).toBeGreaterThan(60);
  });

  it('removing a node moves only the versions it held', async () => {
    const all = new NodePool(urls);
    const fewer = new NodePool(urls.slice(0, 3));
    for (const k of keys) {
      const before = (await all.order(k))[0];
      const after = (await fewer.order(k))[0];
      if (before !== urls[3]) expect(after).toBe(before);
    }
  });

  it('a node marked down goes to the back of the order until it recovers', async () => {
    let now = 0;
    const pool = new NodePool(urls, { downMs: 1000, now: () => now });
    const order = await pool.order('x@1');
    pool.markDown(order[0]);
    expect((await pool.order('x@1')).at(-1)).toBe(order[0]);
    now = 2000;
    expect((await pool.order('x@1'))[0]).toBe(order[0]);
  });
});
