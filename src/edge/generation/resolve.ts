import type { Db } from '../../../registry/db/index.ts';
import type { Viewer } from '../../../registry/queries/adapters.ts';
import { getActiveExperiment } from '../../../registry/queries/experiments.ts';
import { resolveModel } from '../../../registry/queries/resolve.ts';
import type { FileEntry } from '../../../registry/schema.ts';
import { assignArm } from '../experiments/assign.ts';

/** What a request's `model` string resolved to: a base model, optionally with one adapter version. */
export interface Target {
  base: { name: string; version: number };
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
  experiment?: { id: string; arm: string; unit: string };
  /** Set when the served version (or base) is deprecated. */
  warning?: string;
}

/**
 * Resolves a request's `model` (registry/queries/resolve.ts has the grammar) for this caller's
 * unit: a bare ADAPTER with a running experiment goes to the unit's sticky arm, or to the control
 * arm (the first) while the experiment is killed.
 */
export async function resolveTarget(db: Db, model: string, viewer: Viewer | null, unit: string): Promise<Target> {
  const r = await resolveModel(db, model, viewer, async (adapter) => {
    const running = await getActiveExperiment(db, adapter);
    if (!running) return undefined;
    const arm = running.killed ? running.arms[0] : await assignArm(running.id, unit, running.arms);
    const ref =
      arm.version !== null ? { name: adapter.name, version: arm.version } : { name: adapter.name, alias: arm.alias! };
    return { ref, experiment: { id: running.id, arm: arm.name } };
  });
  if (r.kind === 'base') return { base: { name: r.base.model, version: r.base.version }, warning: r.warning };
  const v = r.version;
  return {
    base: { name: v.base.name, version: v.base.version },
    adapter: {
      name: r.adapter.name,
      version: v.version,
      sha256: v.sha256,
      files: v.files,
      taskTokens: v.taskTokens,
      chatTemplate: r.adapter.chatTemplate ?? null,
      via: r.experiment ? 'experiment' : r.via,
      alias: r.alias,
    },
    experiment: r.experiment && { ...r.experiment, unit },
    warning: r.warning,
  };
}
