import { badRequest, conflict, notFound } from '../http/errors.ts';
import type { ExperimentMetric, ExperimentStatus, Guardrails } from '../../registry/schema.ts';

/**
 * An experiment's life, as rules over plain values (store.ts writes what they decide):
 *
 *   draft --start--> running --stop / promote--> stopped
 *
 * A draft's arms and metrics can change; once started they are fixed (a ramp changes weights
 * only, and opens a new weight period); a stopped experiment never runs again. While running,
 * the kill switch (by hand or by a guardrail) serves every unit the control arm and counts
 * nothing.
 */

export interface ArmInput {
  name?: string;
  version?: number;
  alias?: string;
  weight: number;
}

export interface Arm {
  name: string;
  version: number | null;
  alias: string | null;
  weight: number;
  /** The version this arm serves, fixed when the experiment started (null before). */
  resolvedVersion: number | null;
}

export interface Experiment {
  id: string;
  name: string;
  adapter: string;
  adapterId: string;
  tenantId: string;
  status: ExperimentStatus;
  killed: boolean;
  arms: Arm[];
  /** Declared outcome metrics; the first is the primary one (verdict, auto-promotion). */
  metrics: ExperimentMetric[];
  guardrails: Guardrails;
  autoPromote: boolean;
  period: number;
  startedAt: Date | null;
  stoppedAt: Date | null;
  stopReason: string | null;
  createdAt: Date;
  updatedAt: Date;
}

export interface ExperimentInput {
  name: string;
  arms: ArmInput[];
  status?: ExperimentStatus;
  metrics?: ExperimentMetric[];
  guardrails?: Guardrails;
  autoPromote?: boolean;
}

export interface ExperimentPatch {
  name?: string;
  arms?: ArmInput[];
  /** New weights for the existing arms, in order. */
  weights?: number[];
  status?: ExperimentStatus;
  killed?: boolean;
  metrics?: ExperimentMetric[];
  guardrails?: Guardrails;
  autoPromote?: boolean;
}

/** What an experiment measures when it declares nothing: one `score` within the API's old bounds. */
export const DEFAULT_METRIC: ExperimentMetric = { name: 'score', kind: 'continuous', min: -1e6, max: 1e6 };

/** An arm serves either a pinned version or an alias's target: exactly one of the two. */
export const ONE_TARGET = 'give exactly one of "version" and "alias"';
export const namesOneTarget = (a: { version?: number; alias?: string }) =>
  (a.version === undefined) !== (a.alias === undefined);

/** Weights are relative: any non-negative numbers, as long as one arm gets traffic. */
function checkWeights(weights: readonly number[], param: string): void {
  if (!weights.some((w) => w > 0)) throw badRequest('at least one arm needs a weight above 0', 'invalid_arms', param);
}

/**
 * The arms of an input, named (default `v<version>` or the alias) and checked for shape: at least
 * one, one target each, some weight, unique names. Whether their versions and aliases exist is the
 * store's question.
 */
export function armsOf(inputs: readonly ArmInput[]): Arm[] {
  if (!inputs.length) throw badRequest('an experiment needs at least one arm', 'invalid_arms', 'arms');
  checkWeights(
    inputs.map((a) => a.weight),
    'arms',
  );
  const arms = inputs.map((a, i): Arm => {
    if (!namesOneTarget(a)) throw badRequest(`arm ${i}: ${ONE_TARGET}`, 'invalid_arms', `arms.${i}`);
    return {
      name: a.name ?? (a.version !== undefined ? `v${a.version}` : a.alias!),
      version: a.version ?? null,
      alias: a.alias ?? null,
      weight: a.weight,
      resolvedVersion: null,
    };
  });
  if (new Set(arms.map((a) => a.name)).size !== arms.length)
    throw badRequest('arm names must be unique', 'invalid_arms', 'arms');
  return arms;
}

/** Declared metrics (null: none, the default applies), with unique names and min below max. */
export function metricsOf(metrics: ExperimentMetric[] | undefined): ExperimentMetric[] | null {
  if (!metrics?.length) return null;
  if (new Set(metrics.map((m) => m.name)).size !== metrics.length)
    throw badRequest('metric names must be unique', 'invalid_metrics', 'metrics');
  for (const m of metrics)
    if (!(m.min < m.max)) throw badRequest(`metric "${m.name}": min must be below max`, 'invalid_metrics', 'metrics');
  return metrics;
}

/** Checks a value against a declared metric: a 400 naming the bounds otherwise. */
export function checkMetricValue(m: ExperimentMetric, value: number, param: string): void {
  const ok = m.kind === 'binary' ? value === 0 || value === 1 : value >= m.min && value <= m.max;
  if (!ok || (m.kind === 'scale' && !Number.isInteger(value)))
    throw badRequest(
      m.kind === 'binary'
        ? `metric "${m.name}" is binary: the value must be 0 or 1`
        : `metric "${m.name}" is a ${m.kind} within [${m.min}, ${m.max}]` +
            `${m.kind === 'scale' ? ' (whole numbers)' : ''}: ${value} is outside`,
      'value_out_of_range',
      param,
    );
}

/** The metric a score or an outcome is for: the named one (else 400 naming those declared), or the primary one. */
export function declaredMetric(e: Experiment, name: string | undefined, param: string): ExperimentMetric {
  const m = name === undefined ? e.metrics[0] : e.metrics.find((x) => x.name === name);
  if (!m)
    throw badRequest(
      `experiment "${e.id}" has no metric "${name}" (it declares: ${e.metrics.map((x) => x.name).join(', ')})`,
      'unknown_metric',
      param,
    );
  return m;
}

/** What a patch does to an experiment's life, once checked against its state. */
export interface Transition {
  starting: boolean;
  stopping: boolean;
  /** New weights while running: a new weight period opens. */
  ramping: boolean;
  /** The kill switch changes (to `patch.killed`). */
  killing: boolean;
}

/** Checks a patch against the experiment's state (409 for what its state forbids) and names its transition. */
export function transitionOf(current: Experiment, patch: ExperimentPatch): Transition {
  if (patch.arms && patch.weights) throw badRequest('give "arms" or "weights", not both', 'invalid_arms');
  if (current.status === 'stopped' && patch.status && patch.status !== 'stopped')
    throw conflict('a stopped experiment cannot be restarted: create a new one', 'experiment_stopped');
  if (current.status !== 'draft' && (patch.arms || patch.metrics))
    throw conflict(
      `experiment "${current.id}" has started: its arms and metrics are fixed (ramp with "weights")`,
      'experiment_started',
    );
  if (patch.weights) {
    if (patch.weights.length !== current.arms.length)
      throw badRequest(`"weights" needs ${current.arms.length} numbers, one per arm`, 'invalid_arms', 'weights');
    checkWeights(patch.weights, 'weights');
  }
  return {
    starting: current.status === 'draft' && patch.status === 'running',
    stopping: current.status !== 'stopped' && patch.status === 'stopped',
    ramping: !!patch.weights && current.status === 'running',
    killing: patch.killed !== undefined && patch.killed !== current.killed,
  };
}

/** Only a running experiment that is not killed counts events, and can be halted by a guardrail. */
export const isLive = (e: Pick<Experiment, 'status' | 'killed'>) => e.status === 'running' && !e.killed;

/** The arm to promote: it exists (404) and the experiment runs, its version fixed (409). */
export function promotableArm(e: Experiment, armName: string): Arm & { resolvedVersion: number } {
  const arm = e.arms.find((a) => a.name === armName);
  if (!arm) throw notFound(`experiment "${e.id}" has no arm "${armName}"`, 'arm_not_found');
  if (e.status !== 'running' || arm.resolvedVersion === null)
    throw conflict(
      `experiment "${e.id}" is ${e.status}: only a running experiment's arm can be promoted`,
      'not_running',
    );
  return arm as Arm & { resolvedVersion: number };
}
