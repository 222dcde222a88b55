import type { Db } from '../db/index.ts';
import { ApiError, notFound } from '../../src/http/errors.ts';
import { parseRef } from '../names.ts';
import { resolveAdapter, type ResolvedAdapter, type Viewer } from './adapters.ts';
import { getBaseModel, getBaseVersion, type BaseVersion } from './models.ts';

export type ResolvedModel =
  | { kind: 'base'; base: BaseVersion; warning?: string }
  | ({ kind: 'adapter' } & ResolvedAdapter);

/**
 * The whole `model` grammar of the generation API, minus experiments: `BASE[@VERSION]` (no adapter;
 * latest non-yanked version by default) or `ADAPTER`, `ADAPTER@VERSION`, `ADAPTER@ALIAS` (see
 * resolveAdapter). Base models and adapters never share a name, so this is unambiguous. The edge
 * checks getRunningExperiment first when `ADAPTER` comes alone.
 */
export async function resolveModel(db: Db, ref: string, viewer: Viewer | null): Promise<ResolvedModel> {
  const parsed = parseRef(ref);
  if (!parsed) throw new ApiError(400, `"${ref}" is not MODEL, MODEL@VERSION or ADAPTER@ALIAS`, 'invalid_model_ref', 'model');
  if (await getBaseModel(db, parsed.name)) {
    if (parsed.alias !== undefined) throw notFound(`base model "${parsed.name}" has no alias "${parsed.alias}"`, 'model_not_found');
    const base = await getBaseVersion(db, parsed.name, parsed.version);
    if (!base) throw notFound(`base model version ${ref} not found`, 'model_not_found');
    if (base.status === 'yanked') throw new ApiError(410, `${base.model}@${base.version} was yanked and is no longer served`, 'version_yanked');
    return { kind: 'base', base, warning: base.status === 'deprecated' ? `${base.model}@${base.version} is deprecated` : undefined };
  }
  return { kind: 'adapter', ...(await resolveAdapter(db, parsed, viewer)) };
}
