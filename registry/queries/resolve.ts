import type { Db } from '../db/index.ts';
import { ApiError } from '../../src/http/errors.ts';
import { invalidRef, parseRef, servingCheck, type Ref } from '../names.ts';
import { findVisibleAdapter, resolveAdapter, type AdapterRow, type ResolvedAdapter, type Viewer } from './adapters.ts';
import { getBaseModel, getBaseVersion, type BaseVersion } from './models.ts';

/** The experiment arm a bare `ADAPTER` was sent to, and the version or alias that arm serves. */
export interface ArmChoice {
  ref: Ref;
  experiment: { id: string; arm: string };
}

export type ResolvedModel =
  | { kind: 'base'; base: BaseVersion; warning?: string }
  | ({ kind: 'adapter'; experiment?: ArmChoice['experiment'] } & ResolvedAdapter);

/**
 * The `model` grammar of the generation API, resolved in one place: `BASE[@VERSION]` (no adapter;
 * latest non-yanked version by default), `ADAPTER@VERSION` (pin), `ADAPTER@ALIAS`, or `ADAPTER`
 * alone: its running experiment's arm for this caller (`chooseArm`, the edge's sticky assignment)
 * when the caller is of the adapter's tenant, else alias `production`, else its latest active
 * version. Base models and adapters never share a name, so this is unambiguous. Errors are
 * ApiErrors naming `model`: 400, 404, 410.
 */
export async function resolveModel(
  db: Db,
  model: string,
  viewer: Viewer | null,
  chooseArm?: (adapter: AdapterRow) => Promise<ArmChoice | undefined>,
): Promise<ResolvedModel> {
  const ref = parseRef(model);
  if (!ref) throw invalidRef(model);
  if (await getBaseModel(db, ref.name)) {
    if (ref.alias !== undefined)
      throw modelNotFound(`base model "${ref.name}" has no alias "${ref.alias}" (pin a version number)`);
    const base = await getBaseVersion(db, ref.name, ref.version);
    if (!base) throw modelNotFound(`model "${model}" not found`);
    return { kind: 'base', base, ...servingCheck(base.model, base.version, base.status) };
  }
  if (ref.version === undefined && ref.alias === undefined && chooseArm) {
    const adapter = await findVisibleAdapter(db, ref.name, viewer).catch((e) => {
      throw e instanceof ApiError && e.status === 404 ? modelNotFound(`model "${model}" not found`) : e;
    });
    // An experiment belongs to its tenant: another tenant's traffic on a public adapter is neither
    // exposed nor counted (it could otherwise steer the owner's verdicts, guardrails and promotions).
    const arm = viewer?.tenantId === adapter.tenantId ? await chooseArm(adapter) : undefined;
    if (arm) return { kind: 'adapter', experiment: arm.experiment, ...(await resolveAdapter(db, arm.ref, viewer)) };
  }
  return { kind: 'adapter', ...(await resolveAdapter(db, ref, viewer)) };
}

const modelNotFound = (message: string) => new ApiError(404, message, 'model_not_found', 'model');
