import type { Experiment } from '../../../registry/queries/experiments.ts';
import type { EventRow } from '../../../registry/queries/events.ts';
import { differenceInterval, meanInterval, quantile, sampleRatioMismatch } from '../experiments/stats.ts';

/** SRM p-values below this mean the observed split cannot come from the configured weights. */
const SRM_ALPHA = 0.001;

const summary = (xs: number[]) => ({
  mean: xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null,
  p50: quantile(xs, 0.5),
  p95: quantile(xs, 0.95),
});

/**
 * An experiment's results per arm, from its events: exposure (units), usage (requests, tokens,
 * latency, errors) and feedback (scores, joined to the arm of the completion they rate).
 */
export function experimentResults(experiment: Experiment, events: readonly EventRow[]) {
  const arms = experiment.arms.map((arm) => {
    const mine = events.filter((e) => e.arm === arm.name);
    const usage = mine.filter((e) => e.type === 'usage');
    const ok = usage.filter((e) => !e.data?.error);
    const num = (e: EventRow, key: string) => Number(e.data?.[key] ?? 0);
    return {
      arm,
      units: new Set(mine.filter((e) => e.type === 'exposure').map((e) => e.unit)).size,
      usage,
      ok,
      scores: latestPerCompletion(mine.filter((e) => e.type === 'feedback')).map((e) => num(e, 'score')),
      latency: ok.map((e) => num(e, 'total_ms')),
      ttft: ok.map((e) => num(e, 'ttft_ms')),
      tokens: {
        prompt: ok.reduce((s, e) => s + num(e, 'prompt_tokens'), 0),
        completion: usage.reduce((s, e) => s + num(e, 'completion_tokens'), 0),
      },
    };
  });
  const control = arms[0];
  const srm = sampleRatioMismatch(
    arms.map((a) => a.units),
    experiment.arms.map((a) => a.weight),
  );
  return {
    experiment: {
      id: experiment.id,
      name: experiment.name,
      adapter: experiment.adapter,
      status: experiment.status,
      killed: experiment.killed,
      arms: experiment.arms,
    },
    control: control?.arm.name ?? null,
    arms: arms.map((a, i) => ({
      arm: a.arm.name,
      version: a.arm.version,
      alias: a.arm.alias,
      weight: a.arm.weight,
      units: a.units,
      requests: a.usage.length,
      tokens: a.tokens,
      latency_ms: summary(a.latency),
      ttft_ms: summary(a.ttft),
      error_rate: a.usage.length ? (a.usage.length - a.ok.length) / a.usage.length : null,
      feedback: meanInterval(a.scores),
      vs_control:
        i === 0
          ? null
          : {
              feedback: differenceInterval(control.scores, a.scores),
              latency_ms: differenceInterval(control.latency, a.latency),
            },
    })),
    srm: srm && { chi2: srm.chi2, p_value: srm.pValue, mismatch: srm.pValue < SRM_ALPHA, alpha: SRM_ALPHA },
    generated_at: new Date().toISOString(),
  };
}

/** One feedback event per completion: the latest (events come oldest first), as a repeat replaces. */
function latestPerCompletion(feedback: readonly EventRow[]): EventRow[] {
  return [...new Map(feedback.map((e) => [e.completionId, e])).values()];
}
