import type { Db } from '../../../registry/db/index.ts';
import type { Viewer } from '../../../registry/queries/adapters.ts';
import { getActiveExperiment } from '../../../registry/queries/experiments.ts';
import { resolveModel } from '../../../registry/queries/resolve.ts';
import type { FileEntry } from '../../../registry/schema.ts';
import { assignArm } from '../experiments/assign.ts';

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
  experiment?: {
    id: string;
    arm: string;
    /** The arm's position (0 = control). */
    armIndex: number;
    unit: string;
    /** No `user` and no x-versa-unit: the request is its own unit (its completion id). */
    perRequest: boolean;
    /** The experiment's weight period when the arm was chosen (SRM over ramps). */
    period: number;
  };
  /** Set when the served version (or base) is deprecated. */
  warning?: string;
}

/**
 * Resolves a request's `model` (registry/queries/resolve.ts has the grammar) for this caller's
 * unit: a bare ADAPTER with a running experiment goes to the unit's sticky arm, or to the control
 * arm (the first) while the experiment is killed, when the caller is of the adapter's tenant.
 */
export async function resolveTarget(
  db: Db,
  model: string,
  viewer: Viewer | null,
  unit: { id: string; perRequest: boolean },
): Promise<Target> {
  let chosen: { armIndex: number; period: number } | undefined;
  const r = await resolveModel(db, model, viewer, async (adapter) => {
    const running = await getActiveExperiment(db, adapter);
    if (!running) return undefined;
    const arm = running.killed ? running.arms[0] : await assignArm(running.id, unit.id, running.arms);
    chosen = { armIndex: running.arms.indexOf(arm), period: running.period };
    // An arm serves the version fixed when the experiment started, whatever its alias does since.
    const version = arm.resolvedVersion ?? arm.version;
    const ref = version !== null ? { name: adapter.name, version } : { name: adapter.name, alias: arm.alias! };
    return { ref, experiment: { id: running.id, arm: arm.name } };
  });
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
    experiment: r.experiment && chosen && { ...r.experiment, ...chosen, unit: unit.id, perRequest: unit.perRequest },
    warning: r.warning,
  };
}
