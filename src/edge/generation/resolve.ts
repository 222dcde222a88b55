import type { Db } from '../../../registry/db/index.ts';
import { ApiError } from '../../http/errors.ts';
import { findVisibleAdapter, resolveAdapter, type Viewer } from '../../../registry/queries/adapters.ts';
import { getActiveExperiment } from '../../../registry/queries/experiments.ts';
import { getBaseModel, getBaseVersion } from '../../../registry/queries/models.ts';
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
 * The `model` grammar (DESIGN.md): `BASE[@VERSION]` (no adapter), `ADAPTER@VERSION` (pin),
 * `ADAPTER@ALIAS`, or `ADAPTER` (its running experiment's sticky arm for this unit, else alias
 * `production`, else the latest active version). A killed experiment sends every unit to its
 * control arm (the first). Errors are ApiErrors: 400, 404, 410.
 */
export async function resolveTarget(db: Db, model: string, viewer: Viewer | null, unit: string): Promise<Target> {
  const at = model.indexOf('@');
  const name = at < 0 ? model : model.slice(0, at);
  const suffix = at < 0 ? undefined : model.slice(at + 1);
  if (!name || suffix === '') throw new ApiError(400, `"${model}" is not a model: use BASE, ADAPTER, ADAPTER@VERSION or ADAPTER@ALIAS`, 'invalid_model', 'model');

  if (await getBaseModel(db, name)) {
    if (suffix !== undefined && !/^\d+$/.test(suffix)) throw new ApiError(400, `base model versions are numbers ("${model}")`, 'invalid_model', 'model');
    const base = await getBaseVersion(db, name, suffix === undefined ? undefined : Number(suffix));
    if (!base) throw new ApiError(404, `base model "${model}" not found`, 'model_not_found', 'model');
    if (base.status === 'yanked') throw new ApiError(410, `${name}@${base.version} was yanked`, 'version_yanked', 'model');
    return { base: { name, version: base.version }, warning: base.status === 'deprecated' ? `${name}@${base.version} is deprecated` : undefined };
  }

  let ref = model;
  let experiment: Target['experiment'];
  if (suffix === undefined) {
    const adapter = await findVisibleAdapter(db, name, viewer).catch((e) => {
      throw e instanceof ApiError && e.status === 404 ? new ApiError(404, `model "${model}" not found`, 'model_not_found', 'model') : e;
    });
    const running = await getActiveExperiment(db, adapter);
    if (running) {
      const arm = running.killed ? running.arms[0] : await assignArm(running.id, unit, running.arms);
      ref = arm.version !== null ? `${name}@${arm.version}` : `${name}@${arm.alias}`;
      experiment = { id: running.id, arm: arm.name, unit };
    }
  }
  const r = await resolveAdapter(db, ref, viewer);
  const v = r.version;
  return {
    base: { name: v.base.name, version: v.base.version },
    adapter: {
      name: r.adapter.name, version: v.version, sha256: v.sha256, files: v.files, taskTokens: v.taskTokens,
      chatTemplate: r.adapter.chatTemplate ?? null, via: experiment ? 'experiment' : r.via, alias: r.alias,
    },
    experiment,
    warning: r.warning,
  };
}
