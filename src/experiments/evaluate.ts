import type { RegistryDb } from '../../registry/db/index.ts';
import { readAggregates } from './aggregates.ts';
import { isLive, type Experiment } from './lifecycle.ts';
import { experimentHistoryOf, getExperiment, haltExperiment, promoteArm } from './store.ts';
import { experimentResults, type Results } from './results.ts';

/**
 * Reads an experiment's results and acts on them: a violated guardrail pulls the kill switch (every
 * unit is served the control arm, nothing more is counted) with the reason in its history; with `auto_promote`, an
 * arm the sequential test finds better on the primary metric, with no guardrail violated, is
 * promoted. Both act only on the always-valid test, so checking after every request is safe.
 */
export async function evaluateExperiment(registry: RegistryDb, e: Experiment, now: Date): Promise<Results> {
  const results = await compute(registry, e);
  if (!isLive(e)) return results;
  const violated = results.guardrails.checks.filter((c) => c.violated);
  if (violated.length) {
    const reason = violated
      .map((c) => `guardrail ${c.guardrail} (tolerance ${c.tolerance}) violated by arm "${c.arm}" (${measured(c)})`)
      .join('; ');
    await haltExperiment(registry, e, reason, { now });
  } else if (e.autoPromote && results.promotable) {
    await promoteArm(registry, e, results.promotable.arm, { now, auto: true });
  } else return results;
  return compute(registry, (await getExperiment(registry.db, e.id))!);
}

/** A check's figures in words, e.g. "control_p95_ms 120, arm_p95_ms 361, share_above 0.52". */
function measured(c: Results['guardrails']['checks'][number]): string {
  const round = (x: number) => Number(x.toPrecision(3));
  return Object.entries(c.detail)
    .map(([k, v]) => `${k} ${v === null ? '-' : round(v)}`)
    .join(', ');
}

async function compute(registry: RegistryDb, e: Experiment): Promise<Results> {
  const [aggregates, history] = await Promise.all([
    readAggregates(registry.db, e.id),
    experimentHistoryOf(registry.db, e.id),
  ]);
  return experimentResults(e, aggregates, history);
}
