import jStat from 'jstat';

/**
 * The statistics behind experiment results, as pure functions of sufficient statistics (so the
 * results route and the A/A simulation in the tests run the very same code):
 *
 * - per-unit (cluster-robust) estimates of ratio metrics with the delta method;
 * - fixed-horizon normal intervals, and an always-valid confidence sequence + p-value for the
 *   difference against control (safe to peek at after every request);
 * - the sample-ratio-mismatch check against the weights in force over time;
 * - quantiles from a fixed log-bucket histogram.
 *
 * jStat supplies the normal and chi-square distributions.
 */

/** Sums over the units of one arm: x_u is a unit's count (requests, scores), y_u its total. */
export interface Moments {
  /** Units in the arm (units with x_u = 0 included: they are part of the population). */
  n: number;
  sx: number;
  sxx: number;
  sy: number;
  syy: number;
  sxy: number;
}

export const EMPTY_MOMENTS: Moments = { n: 0, sx: 0, sxx: 0, sy: 0, syy: 0, sxy: 0 };

export interface Estimate {
  /** sum(y) / sum(x): the mean per request (or per score) of the arm. */
  mean: number | null;
  /** Variance of `mean` with units as the independent observations (delta method). */
  variance: number | null;
  units: number;
  /** sum(x): requests or scores behind the mean. */
  count: number;
}

/**
 * A ratio metric R = sum(y_u) / sum(x_u) over n units, with the delta-method variance
 * Var(R) ~ (s_yy - 2 R s_xy + R^2 s_xx) / (n xbar^2) (Deng, Knoblich & Lu 2018): the unit, not
 * the request, is the independent draw, so a user who sends many correlated requests counts as
 * one observation. With x_u = 1 for every unit this is the plain unit-level mean and s^2 / n.
 */
export function ratioEstimate(m: Moments): Estimate {
  const base = { units: m.n, count: m.sx };
  if (m.n === 0 || m.sx === 0) return { mean: null, variance: null, ...base };
  const mean = m.sy / m.sx;
  if (m.n < 2) return { mean, variance: null, ...base };
  const xbar = m.sx / m.n;
  const cov = (sab: number, sa: number, sb: number) => (sab - (sa * sb) / m.n) / (m.n - 1);
  const sxx = cov(m.sxx, m.sx, m.sx);
  const syy = cov(m.syy, m.sy, m.sy);
  const sxy = cov(m.sxy, m.sx, m.sy);
  const variance = Math.max(0, (syy - 2 * mean * sxy + mean * mean * sxx) / (m.n * xbar * xbar));
  return { mean, variance, ...base };
}

/** Request-level moments that treat every request as independent (what per-request analysis assumes). */
export function perRequestMoments(count: number, sum: number, sumSquares: number): Moments {
  return { n: count, sx: count, sxx: count, sy: sum, syy: sumSquares, sxy: sum };
}

const z = (level: number) => jStat.normal.inv(1 - (1 - level) / 2, 0, 1);

export function interval(e: Estimate, level = 0.95): [number, number] | null {
  if (e.mean === null || e.variance === null) return null;
  const half = z(level) * Math.sqrt(e.variance);
  return [e.mean - half, e.mean + half];
}

/**
 * Tuning of the confidence sequence: it is tightest when this many units (both arms together) have
 * been seen. Any value keeps it valid; it only moves where its power is spent.
 */
export const SEQUENTIAL_TARGET_UNITS = 5_000;

export interface Difference {
  /** Treatment minus control. */
  diff: number | null;
  /** Fixed-horizon 95 % interval: valid for ONE look at a sample size fixed in advance. */
  ci95: [number, number] | null;
  /** Two-sided fixed-horizon p-value (same caveat). */
  p_value_fixed: number | null;
  /** Always-valid 95 % confidence sequence: valid however often and whenever one looks. */
  cs95: [number, number] | null;
  /** Always-valid p-value (the smallest alpha at which the sequence excludes 0). */
  p_value: number | null;
}

/**
 * The difference treatment - control with its fixed-horizon interval and its always-valid
 * confidence sequence. The sequence is the asymptotic confidence sequence of Waudby-Smith, Arbour,
 * Sinha, Kennedy & Ramdas ("Time-uniform central limit theory and asymptotic confidence
 * sequences", 2021), which is the normal-mixture SPRT of Robbins (1970) / Johari et al.
 * ("Always valid inference", 2017) applied to the estimate and its variance V:
 *
 *   half-width^2 = V * (1 + n rho^2) / (n rho^2) * (2 ln(1/alpha) + ln(1 + n rho^2))
 *   p = min(1, sqrt(1 + n rho^2) * exp(-(diff^2 / V) * n rho^2 / (2 (1 + n rho^2))))
 *
 * n = units in both arms; rho^2 = (-2 ln alpha + ln(1 - 2 ln alpha)) / n*, which makes the sequence
 * tightest at n* = SEQUENTIAL_TARGET_UNITS units. P(the sequence ever excludes the truth) <= alpha
 * (asymptotically: the variance is estimated), so a verdict read off it survives continuous peeking.
 */
export function difference(
  control: Estimate,
  treatment: Estimate,
  options: { alpha?: number; targetUnits?: number } = {},
): Difference {
  const alpha = options.alpha ?? 0.05;
  if (control.mean === null || treatment.mean === null)
    return { diff: null, ci95: null, p_value_fixed: null, cs95: null, p_value: null };
  const diff = treatment.mean - control.mean;
  if (control.variance === null || treatment.variance === null)
    return { diff, ci95: null, p_value_fixed: null, cs95: null, p_value: null };
  const v = control.variance + treatment.variance;
  const sequence = confidenceSequence(diff, v, control.units + treatment.units, alpha, options.targetUnits);
  if (v === 0) return { diff, ci95: [diff, diff], p_value_fixed: diff === 0 ? 1 : 0, ...sequence };
  const half = z(1 - alpha) * Math.sqrt(v);
  return {
    diff,
    ci95: [diff - half, diff + half],
    p_value_fixed: 2 * (1 - jStat.normal.cdf(Math.abs(diff) / Math.sqrt(v), 0, 1)),
    ...sequence,
  };
}

/** The confidence sequence and always-valid p-value of an estimate with variance v from n units. */
export function confidenceSequence(
  estimate: number,
  v: number,
  n: number,
  alpha = 0.05,
  targetUnits = SEQUENTIAL_TARGET_UNITS,
): { cs95: [number, number]; p_value: number } {
  if (v === 0) return { cs95: [estimate, estimate], p_value: estimate === 0 ? 1 : 0 };
  const logA = Math.log(1 / alpha);
  const rho2 = (2 * logA + Math.log(1 + 2 * logA)) / targetUnits;
  const g = n * rho2;
  const half = Math.sqrt(((v * (1 + g)) / g) * (2 * logA + Math.log(1 + g)));
  const logLambda = ((estimate * estimate) / v) * (g / (2 * (1 + g))) - 0.5 * Math.log(1 + g);
  return { cs95: [estimate - half, estimate + half], p_value: Math.min(1, Math.exp(-logLambda)) };
}

/**
 * Sample-ratio mismatch: are the observed unit counts plausible under the weights in force when
 * each unit arrived? `periods[p][a]` counts arm a's units first seen in period p and `weights[p]`
 * were the weights then; the expected count of arm a is sum_p N_p w_pa / sum(w_p), so a ramp is
 * no mismatch. Chi-square goodness of fit (a p-value below 0.001 means the split is broken).
 */
export function sampleRatioMismatch(
  periods: readonly (readonly number[])[],
  weights: readonly (readonly number[])[],
): { chi2: number; pValue: number; expected: number[] } | null {
  const arms = periods[0]?.length ?? 0;
  const observed = new Array<number>(arms).fill(0);
  const expected = new Array<number>(arms).fill(0);
  periods.forEach((counts, p) => {
    const total = counts.reduce((a, b) => a + b, 0);
    const w = weights[p] ?? weights[weights.length - 1];
    const wsum = w.reduce((a, b) => a + b, 0);
    counts.forEach((o, a) => {
      observed[a] += o;
      expected[a] += wsum > 0 ? (total * w[a]) / wsum : 0;
    });
  });
  const total = observed.reduce((a, b) => a + b, 0);
  const cells = observed.map((o, a) => ({ o, e: expected[a] })).filter((c) => c.e > 0 || c.o > 0);
  if (total === 0 || cells.length < 2) return null;
  if (cells.some((c) => c.e === 0)) return { chi2: Infinity, pValue: 0, expected };
  const chi2 = cells.reduce((s, c) => s + (c.o - c.e) ** 2 / c.e, 0);
  return { chi2, pValue: 1 - jStat.chisquare.cdf(chi2, cells.length - 1), expected };
}

/**
 * Latency histogram buckets: bucket k holds [2^(k/4), 2^((k+1)/4)) ms (bucket 0 also everything
 * below), so a quantile read from it is within 19 % of the true value (we report the bucket's
 * geometric middle: within +-9 %). 128 buckets reach 2^32 ms.
 */
const HISTOGRAM_BUCKETS = 128;

export function histogramBucket(ms: number): number {
  if (!(ms > 1)) return 0;
  return Math.min(HISTOGRAM_BUCKETS - 1, Math.floor(4 * Math.log2(ms)));
}

const bucketLow = (k: number) => (k === 0 ? 0 : 2 ** (k / 4));

/** The q-quantile of a histogram (bucket -> count), as its bucket's geometric middle. */
export function histogramQuantile(counts: ReadonlyMap<number, number>, q: number): number | null {
  const total = [...counts.values()].reduce((a, b) => a + b, 0);
  if (!total) return null;
  let seen = 0;
  for (const k of [...counts.keys()].sort((a, b) => a - b)) {
    seen += counts.get(k)!;
    if (seen >= q * total) return 2 ** ((k + 0.5) / 4);
  }
  return null;
}

/**
 * How many requests of a histogram are surely slower than `ms` (whole buckets at or above it), out
 * of how many: what the p95 guardrail tests.
 */
export function countAbove(counts: ReadonlyMap<number, number>, ms: number): { above: number; total: number } {
  let above = 0;
  let total = 0;
  for (const [k, c] of counts) {
    total += c;
    if (bucketLow(k) >= ms) above += c;
  }
  return { above, total };
}
