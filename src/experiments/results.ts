import type { Experiment } from './lifecycle.ts';
import type { HistoryEntry } from './store.ts';
import type { Aggregates } from './aggregates.ts';
import {
  confidenceSequence,
  countAbove,
  difference,
  EMPTY_MOMENTS,
  histogramQuantile,
  interval,
  ratioEstimate,
  sampleRatioMismatch,
  SEQUENTIAL_TARGET_UNITS,
  type Estimate,
  type Moments,
} from './stats.ts';

/** SRM p-values below this mean the observed split cannot come from the weights. */
const SRM_ALPHA = 0.001;
/** Error rate of the verdicts and guardrails (split over the treatment arms: Bonferroni). */
const ALPHA = 0.05;
/** Units per arm before a verdict or a guardrail may act (the sequences are asymptotic). */
const MIN_UNITS = 20;

type Verdict = 'better' | 'worse' | 'inconclusive' | 'too_few_units';

interface GuardrailCheck {
  arm: string;
  guardrail: 'error_rate' | 'p95_latency' | 'tokens_per_request';
  tolerance: number;
  /** The arm's regression the sequential test is sure of (lower end of its confidence sequence). */
  detail: Record<string, number | null>;
  violated: boolean;
}

/**
 * An experiment's results from its aggregates (aggregates.ts): per
 * arm, unit-level estimates (delta method) of requests per unit, error rate, latency, tokens and
 * every declared metric; against control, the fixed-horizon interval and the always-valid
 * confidence sequence + p-value (the verdict uses the latter); guardrail checks; whether an arm
 * can be promoted; and the SRM check against the weights in force over time.
 */
export function experimentResults(e: Experiment, agg: Aggregates, history: HistoryEntry[] = []) {
  const moments = (arm: number, stat: string): Moments => {
    const row = agg.moments.find((m) => m.arm === arm && m.stat === stat);
    return { ...(row ?? EMPTY_MOMENTS), n: unitsOf(arm) };
  };
  const periodsSeen = [...new Set(agg.moments.filter((m) => m.stat.startsWith('units:')).map((m) => m.stat))];
  const unitsOf = (arm: number) =>
    agg.moments.filter((m) => m.arm === arm && m.stat.startsWith('units:')).reduce((s, m) => s + m.sx, 0);
  const histogram = (arm: number, kind: 'latency' | 'ttft') =>
    new Map(agg.histogram.filter((h) => h.arm === arm && h.kind === kind).map((h) => [h.bucket, h.count]));
  const primary = e.metrics[0];
  const alpha = ALPHA / Math.max(1, e.arms.length - 1);

  const arms = e.arms.map((arm, i) => {
    const units = unitsOf(i);
    const est = {
      requests: ratioEstimate(moments(i, 'requests')),
      errors: ratioEstimate(moments(i, 'errors')),
      tokens: ratioEstimate(moments(i, 'tokens')),
      latency: ratioEstimate(moments(i, 'latency_ms')),
      ttft: ratioEstimate(moments(i, 'ttft_ms')),
      metrics: Object.fromEntries(e.metrics.map((m) => [m.name, ratioEstimate(moments(i, `metric:${m.name}`))])),
    };
    return { arm, i, units, est, latency: histogram(i, 'latency'), ttft: histogram(i, 'ttft') };
  });
  const control = arms[0];

  const versus = (a: (typeof arms)[number]) => {
    const d = (pick: (x: typeof a.est) => Estimate) =>
      difference(pick(control.est), pick(a.est), { alpha: ALPHA, targetUnits: SEQUENTIAL_TARGET_UNITS });
    return {
      metrics: Object.fromEntries(e.metrics.map((m) => [m.name, d((x) => x.metrics[m.name])])),
      error_rate: d((x) => x.errors),
      latency_ms: d((x) => x.latency),
      tokens_per_request: d((x) => x.tokens),
    };
  };

  const verdicts = arms.slice(1).map((a) => ({ arm: a.arm.name, ...verdict(control.est.metrics[primary.name], a) }));
  function verdict(c: Estimate, a: (typeof arms)[number]): { verdict: Verdict; cs: [number, number] | null } {
    if (control.units < MIN_UNITS || a.units < MIN_UNITS) return { verdict: 'too_few_units', cs: null };
    const d = difference(c, a.est.metrics[primary.name], { alpha });
    if (!d.cs95) return { verdict: 'inconclusive', cs: null };
    return { verdict: d.cs95[0] > 0 ? 'better' : d.cs95[1] < 0 ? 'worse' : 'inconclusive', cs: d.cs95 };
  }

  const checks: GuardrailCheck[] = [];
  for (const a of arms.slice(1)) {
    const enough = control.units >= MIN_UNITS && a.units >= MIN_UNITS;
    const g = e.guardrails;
    if (g.error_rate !== undefined) {
      const d = difference(control.est.errors, a.est.errors, { alpha });
      const lower = d.cs95?.[0] ?? null;
      checks.push({
        arm: a.arm.name,
        guardrail: 'error_rate',
        tolerance: g.error_rate,
        detail: { control: control.est.errors.mean, arm: a.est.errors.mean, regression_at_least: lower },
        violated: enough && lower !== null && lower > g.error_rate,
      });
    }
    if (g.tokens_per_request !== undefined) {
      const d = difference(control.est.tokens, a.est.tokens, { alpha });
      const lower = d.cs95?.[0] ?? null;
      const base = control.est.tokens.mean;
      checks.push({
        arm: a.arm.name,
        guardrail: 'tokens_per_request',
        tolerance: g.tokens_per_request,
        detail: { control: base, arm: a.est.tokens.mean, regression_at_least: lower },
        violated: enough && lower !== null && base !== null && lower > g.tokens_per_request * base,
      });
    }
    if (g.p95_latency !== undefined) checks.push(p95Check(a.arm.name, control.latency, a.latency, g.p95_latency));
  }
  // p95 guardrail: with T = (1 + tolerance) x the control's p95 (from its histogram), an arm whose p95
  // is within tolerance has at most 5 % of its requests above T. The check is a confidence sequence
  // on the arm's fraction above T minus 0.05, with requests as observations (an approximation: it
  // ignores both the clustering of requests in units and the error of the control's p95).
  function p95Check(arm: string, c: Map<number, number>, t: Map<number, number>, tolerance: number): GuardrailCheck {
    const p95 = histogramQuantile(c, 0.95);
    const { above, total } = p95 === null ? { above: 0, total: 0 } : countAbove(t, p95 * (1 + tolerance));
    const controlTotal = [...c.values()].reduce((s, n) => s + n, 0);
    let lower: number | null = null;
    if (total > 0) {
      const f = above / total;
      const v = Math.max(f * (1 - f), 0.05 * 0.95) / total;
      lower = confidenceSequence(f - 0.05, v, total, alpha).cs95[0];
    }
    return {
      arm,
      guardrail: 'p95_latency',
      tolerance,
      detail: {
        control_p95_ms: p95,
        arm_p95_ms: histogramQuantile(t, 0.95),
        share_above: total ? above / total : null,
      },
      violated: controlTotal >= MIN_UNITS && total >= MIN_UNITS && lower !== null && lower > 0,
    };
  }
  const violated = checks.filter((c) => c.violated);

  const better = verdicts.filter((v) => v.verdict === 'better');
  const best = better.sort(
    (x, y) =>
      (arms.find((a) => a.arm.name === y.arm)!.est.metrics[primary.name].mean ?? 0) -
      (arms.find((a) => a.arm.name === x.arm)!.est.metrics[primary.name].mean ?? 0),
  )[0];
  const promotable =
    e.status === 'running' && best && !violated.length
      ? { arm: best.arm, reason: `"${best.arm}" beats control on ${primary.name} (sequential test, alpha ${alpha})` }
      : null;

  const periods = [...agg.periods].sort((a, b) => a.period - b.period);
  const periodIds = periodsSeen.map((p) => Number(p.slice('units:'.length))).sort((a, b) => a - b);
  const srm = sampleRatioMismatch(
    periodIds.map((p) => arms.map((a) => moments(a.i, `units:${p}`).sx)),
    periodIds.map((p) => periods.find((x) => x.period === p)?.weights ?? e.arms.map((a) => a.weight)),
  );

  const summary = (est: Estimate) => ({ mean: est.mean, ci95: interval(est) });
  const total = (arm: number, stat: string) => moments(arm, stat).sy;
  return {
    experiment: {
      id: e.id,
      name: e.name,
      adapter: e.adapter,
      status: e.status,
      killed: e.killed,
      started_at: e.startedAt?.toISOString() ?? null,
      stopped_at: e.stoppedAt?.toISOString() ?? null,
      stop_reason: e.stopReason,
      metrics: e.metrics,
      guardrails: e.guardrails,
      auto_promote: e.autoPromote,
      arms: e.arms.map((a) => ({ ...armOut(a) })),
    },
    control: control?.arm.name ?? null,
    primary_metric: primary.name,
    analysis: {
      unit: 'randomization unit (user, x-versa-unit, else the completion)',
      variance: 'delta method over units (cluster-robust)',
      sequential: 'asymptotic confidence sequence (normal mixture), always valid under continuous peeking',
      alpha: ALPHA,
      target_units: SEQUENTIAL_TARGET_UNITS,
      min_units: MIN_UNITS,
    },
    arms: arms.map((a, i) => ({
      arm: a.arm.name,
      ...armOut(a.arm),
      units: a.units,
      per_request_units: moments(i, 'per_request_units').sx,
      crossover_requests: total(i, 'crossover_requests'),
      requests: moments(i, 'errors').sx,
      requests_per_unit: summary(a.est.requests),
      tokens: { prompt: total(i, 'prompt_tokens'), completion: total(i, 'completion_tokens') },
      tokens_per_request: summary(a.est.tokens),
      latency_ms: {
        ...summary(a.est.latency),
        p50: histogramQuantile(a.latency, 0.5),
        p95: histogramQuantile(a.latency, 0.95),
      },
      ttft_ms: { ...summary(a.est.ttft), p50: histogramQuantile(a.ttft, 0.5), p95: histogramQuantile(a.ttft, 0.95) },
      error_rate: a.est.errors.mean,
      error_rate_ci95: interval(a.est.errors),
      metrics: Object.fromEntries(
        e.metrics.map((m) => [m.name, { n: a.est.metrics[m.name].count, ...summary(a.est.metrics[m.name]) }]),
      ),
      /** The primary metric (what the dashboard's feedback column shows). */
      feedback: { n: a.est.metrics[primary.name].count, ...summary(a.est.metrics[primary.name]) },
      vs_control:
        i === 0
          ? null
          : (() => {
              const v = versus(a);
              return { ...v, feedback: v.metrics[primary.name] };
            })(),
    })),
    verdict: { metric: primary.name, alpha, arms: verdicts.map(({ arm, verdict, cs }) => ({ arm, verdict, cs })) },
    guardrails: { state: violated.length ? 'violated' : 'ok', checks },
    promotable,
    srm: srm && {
      chi2: srm.chi2,
      p_value: srm.pValue,
      expected: srm.expected,
      mismatch: srm.pValue < SRM_ALPHA,
      alpha: SRM_ALPHA,
    },
    history: history.map((h) => ({ kind: h.kind, detail: h.detail, at: h.at.toISOString(), by: h.by })),
    generated_at: new Date().toISOString(),
  };
}

const armOut = (a: Experiment['arms'][number]) => ({
  version: a.resolvedVersion ?? a.version,
  alias: a.alias,
  resolved_version: a.resolvedVersion,
  weight: a.weight,
});

export type Results = ReturnType<typeof experimentResults>;
