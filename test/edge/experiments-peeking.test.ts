import { describe, expect, it } from 'vitest';
import {
  difference,
  perRequestMoments,
  ratioEstimate,
  sampleRatioMismatch,
  type Moments,
} from '../../src/experiments/stats.ts';

/**
 * Simulated experiments through the statistics module the results route uses: units send several
 * requests each and differ strongly from one another (a per-unit effect), and the analyst peeks
 * after every 100 units.
 */

function rng(seed: number) {
  let s = seed >>> 0;
  const uniform = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const normal = () => Math.sqrt(-2 * Math.log(uniform() + 1e-12)) * Math.cos(2 * Math.PI * uniform());
  return { uniform, normal };
}

interface Arm {
  unit: Moments;
  requests: { count: number; sum: number; squares: number };
}

const emptyArm = (): Arm => ({
  unit: { n: 0, sx: 0, sxx: 0, sy: 0, syy: 0, sxy: 0 },
  requests: { count: 0, sum: 0, squares: 0 },
});

/** One simulated experiment; returns whether each analysis ever rejected "no difference" while peeking. */
function simulate(seed: number, opts: { units: number; lift: number; peekEvery: number }) {
  const r = rng(seed);
  const arms = [emptyArm(), emptyArm()];
  let sequentialRejected = false;
  let naiveRejected = false;
  let finalSequential = null as ReturnType<typeof difference> | null;
  for (let u = 1; u <= opts.units; u++) {
    const arm = r.uniform() < 0.5 ? 0 : 1;
    // A strong per-unit effect: some units convert almost always, others almost never.
    const p = Math.min(1, (1 / (1 + Math.exp(-(r.normal() * 2 - 0.3)))) * (arm === 1 ? 1 + opts.lift : 1));
    const requests = 1 + Math.floor(-Math.log(r.uniform() + 1e-12) * 6); // geometric-ish, mean ~6.5
    let successes = 0;
    for (let i = 0; i < requests; i++) successes += r.uniform() < p ? 1 : 0;
    const a = arms[arm];
    a.unit = {
      n: a.unit.n + 1,
      sx: a.unit.sx + requests,
      sxx: a.unit.sxx + requests * requests,
      sy: a.unit.sy + successes,
      syy: a.unit.syy + successes * successes,
      sxy: a.unit.sxy + requests * successes,
    };
    a.requests = {
      count: a.requests.count + requests,
      sum: a.requests.sum + successes,
      squares: a.requests.squares + successes,
    };
    if (u % opts.peekEvery) continue;
    const perUnit = difference(ratioEstimate(arms[0].unit), ratioEstimate(arms[1].unit));
    const perRequest = difference(
      ratioEstimate(perRequestMoments(arms[0].requests.count, arms[0].requests.sum, arms[0].requests.squares)),
      ratioEstimate(perRequestMoments(arms[1].requests.count, arms[1].requests.sum, arms[1].requests.squares)),
    );
    if (perUnit.cs95 && (perUnit.cs95[0] > 0 || perUnit.cs95[1] < 0)) sequentialRejected = true;
    if (perRequest.ci95 && (perRequest.ci95[0] > 0 || perRequest.ci95[1] < 0)) naiveRejected = true;
    finalSequential = perUnit;
  }
  return { sequentialRejected, naiveRejected, finalSequential };
}

describe('A/A simulation: peeking at a per-unit sequential analysis', () => {
  it('rejects at most 5 % of the time; per-request fixed-horizon intervals reject far more', () => {
    const runs = 300;
    let sequential = 0;
    let naive = 0;
    for (let i = 0; i < runs; i++) {
      const s = simulate(1000 + i, { units: 3000, lift: 0, peekEvery: 100 });
      sequential += Number(s.sequentialRejected);
      naive += Number(s.naiveRejected);
    }
    const rates = { sequential_per_unit: sequential / runs, fixed_horizon_per_request: naive / runs };
    console.log(`A/A false-positive rates over ${runs} experiments, 30 peeks each:`, rates);
    expect(rates.sequential_per_unit).toBeLessThanOrEqual(0.05);
    expect(rates.fixed_horizon_per_request).toBeGreaterThan(3 * 0.05);
  });

  it('detects a 5 % lift', () => {
    let detected = 0;
    const runs = 10;
    for (let i = 0; i < runs; i++) {
      const s = simulate(5000 + i, { units: 120_000, lift: 0.05, peekEvery: 10_000 });
      if (s.finalSequential!.cs95![0] > 0 && s.finalSequential!.p_value! < 0.05) detected++;
    }
    console.log(`5 % lift detected by the sequential test in ${detected} of ${runs} experiments`);
    expect(detected).toBeGreaterThanOrEqual(8);
  });
});

describe('sample-ratio mismatch over a ramp', () => {
  it('judges each period by the weights in force then', () => {
    // 90/10 for 10,000 units, then 50/50 for 10,000: 14,000 vs 6,000 overall is what a ramp gives.
    const periods = [
      [9000, 1000],
      [5000, 5000],
    ];
    expect(
      sampleRatioMismatch(periods, [
        [90, 10],
        [50, 50],
      ])!.pValue,
    ).toBeGreaterThan(0.05);
    expect(sampleRatioMismatch([[14000, 6000]], [[50, 50]])!.pValue).toBeLessThan(1e-6);
    expect(sampleRatioMismatch([[5400, 4600]], [[50, 50]])!.pValue).toBeLessThan(0.001);
  });
});
