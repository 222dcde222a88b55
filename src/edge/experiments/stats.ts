import jStat from 'jstat';

/**
 * The statistics behind experiment results: means with t-intervals, Welch's interval for the
 * difference of two means, and the chi-square sample-ratio-mismatch test. jStat supplies the
 * Student t and chi-square distributions.
 */
export interface MeanInterval {
  n: number;
  mean: number | null;
  /** 95 % confidence interval (null with fewer than 2 observations). */
  ci95: [number, number] | null;
}

export function meanInterval(xs: readonly number[], level = 0.95): MeanInterval {
  const n = xs.length;
  if (n === 0) return { n, mean: null, ci95: null };
  const mean = xs.reduce((a, b) => a + b, 0) / n;
  if (n < 2) return { n, mean, ci95: null };
  const half = jStat.studentt.inv(1 - (1 - level) / 2, n - 1) * Math.sqrt(variance(xs, mean) / n);
  return { n, mean, ci95: [mean - half, mean + half] };
}

/** Welch's interval for mean(b) - mean(a) (unequal variances). */
export function differenceInterval(
  a: readonly number[],
  b: readonly number[],
  level = 0.95,
): { diff: number | null; ci95: [number, number] | null } {
  if (!a.length || !b.length) return { diff: null, ci95: null };
  const ma = a.reduce((x, y) => x + y, 0) / a.length;
  const mb = b.reduce((x, y) => x + y, 0) / b.length;
  const diff = mb - ma;
  if (a.length < 2 || b.length < 2) return { diff, ci95: null };
  const va = variance(a, ma) / a.length;
  const vb = variance(b, mb) / b.length;
  const se = Math.sqrt(va + vb);
  if (se === 0) return { diff, ci95: [diff, diff] };
  const df = (va + vb) ** 2 / (va ** 2 / (a.length - 1) + vb ** 2 / (b.length - 1));
  const half = jStat.studentt.inv(1 - (1 - level) / 2, df) * se;
  return { diff, ci95: [diff - half, diff + half] };
}

/**
 * Sample-ratio mismatch: are the observed unit counts plausible under the configured weights?
 * Chi-square goodness of fit; a small p-value (conventionally < 0.001) means the split is broken.
 */
export function sampleRatioMismatch(
  observed: readonly number[],
  weights: readonly number[],
): { chi2: number; pValue: number } | null {
  const total = observed.reduce((a, b) => a + b, 0);
  const wsum = weights.reduce((a, b) => a + b, 0);
  const cells = observed.map((o, i) => ({ o, e: (total * weights[i]) / wsum })).filter((c) => c.e > 0);
  if (total === 0 || cells.length < 2) return null;
  const chi2 = cells.reduce((s, c) => s + (c.o - c.e) ** 2 / c.e, 0);
  return { chi2, pValue: 1 - jStat.chisquare.cdf(chi2, cells.length - 1) };
}

export function quantile(xs: readonly number[], q: number): number | null {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  const at = (s.length - 1) * q;
  const lo = Math.floor(at);
  return s[lo] + (s[Math.min(lo + 1, s.length - 1)] - s[lo]) * (at - lo);
}

function variance(xs: readonly number[], mean: number): number {
  return xs.reduce((s, x) => s + (x - mean) ** 2, 0) / (xs.length - 1);
}
