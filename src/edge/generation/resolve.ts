import type { Db } from '../../../registry/db/index.ts';
import type { Viewer } from '../../../registry/queries/adapters.ts';
import { resolveAdapter } from '../../../registry/queries/adapters.ts';
import { getActiveExperiment } from '../../experiments/store.ts';
import type { Experiment } from '../../experiments/lifecycle.ts';
import { resolveModel, type ResolvedModel } from '../../../registry/queries/resolve.ts';
import type { FileEntry } from '../../../registry/schema.ts';
import { assignArm, type ArmAssignment } from '../../experiments/assign.ts';
import { RegistryCache } from './cache.ts';

/** What a request's `model` string resolved to: a base model, optionally with one adapter version. */
export interface Target {
  /** chatTemplate: the base tokenizer's own (tokenizer_config.json), the fallback when the adapter has none. */
  /** sha256: of its files, as the registry has it; only nodes reporting the same serve the request. */
  base: { name: string; version: number; sha256: string; chatTemplate?: string | null };
  adapter?: {
    name: string;
    version: number;
    sha256: string;
    files: FileEntry[];
    taskTokens: string[];
    chatTemplate: string | null;
    via: 'pin' | 'alias' | 'default' | 'experiment';
    alias?: string;
  };
  experiment?: ArmAssignment;
  /** Set when the served version (or base) is deprecated. */
  warning?: string;
}

/**
 * Resolves a request's `model` (registry/queries/resolve.ts has the grammar) for this caller's
 * unit: a bare ADAPTER with a running experiment goes to the unit's sticky arm, or to the control
 * arm (the first) while the experiment is killed, when the caller is of the adapter's tenant.
 * Registry reads go through `cache` (per caller's tenant: visibility differs); the arm is chosen
 * per request, from the cached experiment.
 */
export async function resolveTarget(
  db: Db,
  model: string,
  viewer: Viewer | null,
  unit: { id: string; perRequest: boolean },
  cache: RegistryCache = UNCACHED,
): Promise<Target> {
  const scope = viewer ? `${viewer.tenantId}\u0000${viewer.operator ? 'operator' : ''}` : '';
  const plan = await cache.get(`model\u0000${scope}\u0000${model}`, () => planFor(db, model, viewer));
  if (!('experiment' in plan)) return targetOf(plan.resolved);
  const { experiment: running, adapter } = plan;
  const arm = running.killed ? running.arms[0] : await armOf(plan, unit);
  // An arm serves the version fixed when the experiment started, whatever its alias does since.
  const version = arm.resolvedVersion ?? arm.version;
  const ref = version !== null ? { name: adapter, version } : { name: adapter, alias: arm.alias! };
  const resolved = await cache.get(`arm\u0000${scope}\u0000${running.id}\u0000${arm.name}`, () =>
    resolveAdapter(db, ref, viewer),
  );
  return targetOf(
    { kind: 'adapter', ...resolved, experiment: { id: running.id, arm: arm.name } },
    { armIndex: running.arms.indexOf(arm), period: running.period, unit: unit.id, perRequest: unit.perRequest },
  );
}

const UNCACHED = new RegistryCache(0);

/** What a model string names for a caller, before any arm is chosen: a resolution, or an experiment. */
type Plan = { resolved: ResolvedModel } | ExperimentPlan;

/** A bare adapter in a running experiment, with the arms of units seen (valid as long as the plan is). */
interface ExperimentPlan {
  experiment: Experiment;
  adapter: string;
  assigned: Map<string, Experiment['arms'][number]>;
}

/** Sticky units' arms kept per plan, at most this many (the assignment is a hash: the same on recomputing). */
const MAX_ASSIGNED = 10_000;

/** The unit's sticky arm: computed once per plan for a named unit, never kept for a per-request one. */
async function armOf(plan: ExperimentPlan, unit: { id: string; perRequest: boolean }) {
  const kept = plan.assigned.get(unit.id);
  if (kept) return kept;
  const arm = await assignArm(plan.experiment.id, unit.id, plan.experiment.arms);
  if (unit.perRequest) return arm;
  if (plan.assigned.size >= MAX_ASSIGNED) plan.assigned.clear();
  plan.assigned.set(unit.id, arm);
  return arm;
}

/** Thrown out of resolveModel when the adapter has a running experiment: its arm is chosen per request. */
class ArmNeeded {
  constructor(readonly plan: ExperimentPlan) {}
}

async function planFor(db: Db, model: string, viewer: Viewer | null): Promise<Plan> {
  try {
    const resolved = await resolveModel(db, model, viewer, async (adapter) => {
      const running = await getActiveExperiment(db, adapter);
      if (running) throw new ArmNeeded({ experiment: running, adapter: adapter.name, assigned: new Map() });
      return undefined;
    });
    return { resolved };
  } catch (e) {
    if (e instanceof ArmNeeded) return e.plan;
    throw e;
  }
}

/** The Target of a resolution (with the experiment arm chosen for this request, if any). */
function targetOf(
  r: ResolvedModel,
  chosen?: { armIndex: number; period: number; unit: string; perRequest: boolean },
): Target {
  if (r.kind === 'base') {
    const chatTemplate = r.base.tokenizer?.chat_template ?? null;
    return {
      base: { name: r.base.model, version: r.base.version, sha256: r.base.sha256, chatTemplate },
      warning: r.warning,
    };
  }
  const v = r.version;
  return {
    base: {
      name: v.base.name,
      version: v.base.version,
      sha256: v.base.sha256,
      chatTemplate: v.base.tokenizer?.chat_template ?? null,
    },
    adapter: {
      name: r.adapter.name,
      version: v.version,
      sha256: v.sha256,
      files: v.files,
      taskTokens: v.taskTokens,
      // The version's own template, else the adapter's legacy one (the base's is the caller's fallback).
      chatTemplate: v.chatTemplate ?? r.adapter.chatTemplate ?? null,
      via: r.experiment ? 'experiment' : r.via,
      alias: r.alias,
    },
    experiment: r.experiment && chosen && { ...r.experiment, ...chosen },
    warning: r.warning,
  };
}
