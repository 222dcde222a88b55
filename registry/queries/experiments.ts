import { and, asc, desc, eq } from 'drizzle-orm';
import type { Db, RegistryDb, Statement } from '../db/index.ts';
import { isUniqueViolation } from '../db/index.ts';
import { ApiError, badRequest, conflict, notFound } from '../../src/http/errors.ts';
import { adapters, experimentArms, experiments, type ExperimentStatus } from '../schema.ts';
import { getAlias } from './aliases.ts';
import { canSee, getVersion, type AdapterRow, type Viewer } from './adapters.ts';

export interface ArmInput {
  name?: string;
  version?: number;
  alias?: string;
  weight: number;
}

interface Arm {
  name: string;
  version: number | null;
  alias: string | null;
  weight: number;
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
  createdAt: Date;
  updatedAt: Date;
}

/** Checks arms against the adapter: every pinned version exists and is not yanked, every alias exists. */
async function checkArms(db: Db, adapter: AdapterRow, arms: ArmInput[]): Promise<Arm[]> {
  if (!arms.length) throw badRequest('an experiment needs at least one arm', 'invalid_arms', 'arms');
  if (!arms.some((a) => a.weight > 0))
    throw badRequest('at least one arm needs a weight above 0', 'invalid_arms', 'arms');
  const out: Arm[] = [];
  for (const [i, a] of arms.entries()) {
    if ((a.version === undefined) === (a.alias === undefined))
      throw badRequest(`arm ${i}: give exactly one of "version" and "alias"`, 'invalid_arms', `arms.${i}`);
    if (a.version !== undefined) {
      const v = await getVersion(db, adapter, a.version);
      if (!v) throw notFound(`adapter "${adapter.name}" has no version ${a.version}`, 'version_not_found');
      if (v.status === 'yanked') throw new ApiError(409, `${adapter.name}@${a.version} is yanked`, 'version_yanked');
    } else if (!(await getAlias(db, adapter, a.alias!))) {
      throw notFound(`adapter "${adapter.name}" has no alias "${a.alias}"`, 'alias_not_found');
    }
    out.push({
      name: a.name ?? (a.version !== undefined ? `v${a.version}` : a.alias!),
      version: a.version ?? null,
      alias: a.alias ?? null,
      weight: a.weight,
    });
  }
  if (new Set(out.map((a) => a.name)).size !== out.length)
    throw badRequest('arm names must be unique', 'invalid_arms', 'arms');
  return out;
}

function armStatements(db: Db, experimentId: string, arms: Arm[]): Statement[] {
  return [db.insert(experimentArms).values(arms.map((a, position) => ({ experimentId, position, ...a })))];
}

export async function createExperiment(
  r: RegistryDb,
  adapter: AdapterRow,
  input: { name: string; arms: ArmInput[]; status?: ExperimentStatus },
  by: { keyId?: string | null; now: Date },
): Promise<Experiment> {
  const arms = await checkArms(r.db, adapter, input.arms);
  const id = `exp_${crypto.randomUUID().replace(/-/g, '').slice(0, 24)}`;
  try {
    await r.atomic([
      r.db.insert(experiments).values({
        id,
        name: input.name,
        adapterId: adapter.id,
        status: input.status ?? 'draft',
        createdAt: by.now,
        updatedAt: by.now,
        createdBy: by.keyId ?? null,
      }),
      ...armStatements(r.db, id, arms),
    ]);
  } catch (e) {
    if (isUniqueViolation(e))
      throw conflict(`adapter "${adapter.name}" already has a running experiment`, 'experiment_running');
    throw e;
  }
  return (await getExperiment(r.db, id))!;
}

export interface ExperimentPatch {
  name?: string;
  arms?: ArmInput[];
  /** New weights for the existing arms, in order. */
  weights?: number[];
  status?: ExperimentStatus;
  killed?: boolean;
}

export async function updateExperiment(
  r: RegistryDb,
  current: Experiment,
  adapter: AdapterRow,
  patch: ExperimentPatch,
  now: Date,
): Promise<Experiment> {
  if (patch.arms && patch.weights) throw badRequest('give "arms" or "weights", not both', 'invalid_arms');
  let arms: Arm[] | undefined;
  if (patch.arms) arms = await checkArms(r.db, adapter, patch.arms);
  if (patch.weights) {
    if (patch.weights.length !== current.arms.length) {
      throw badRequest(`"weights" needs ${current.arms.length} numbers, one per arm`, 'invalid_arms', 'weights');
    }
    if (!patch.weights.some((w) => w > 0))
      throw badRequest('at least one arm needs a weight above 0', 'invalid_arms', 'weights');
    arms = current.arms.map((a, i) => ({ ...a, weight: patch.weights![i] }));
  }
  if (current.status === 'stopped' && patch.status && patch.status !== 'stopped') {
    throw conflict('a stopped experiment cannot be restarted: create a new one', 'experiment_stopped');
  }
  const set: Partial<typeof experiments.$inferInsert> = { updatedAt: now };
  if (patch.name !== undefined) set.name = patch.name;
  if (patch.status !== undefined) set.status = patch.status;
  if (patch.killed !== undefined) set.killed = patch.killed;
  const statements: Statement[] = [r.db.update(experiments).set(set).where(eq(experiments.id, current.id))];
  if (arms)
    statements.push(
      r.db.delete(experimentArms).where(eq(experimentArms.experimentId, current.id)),
      ...armStatements(r.db, current.id, arms),
    );
  try {
    await r.atomic(statements);
  } catch (e) {
    if (isUniqueViolation(e))
      throw conflict(`adapter "${adapter.name}" already has a running experiment`, 'experiment_running');
    throw e;
  }
  return (await getExperiment(r.db, current.id))!;
}

async function getExperiment(db: Db, id: string): Promise<Experiment | undefined> {
  const [row] = await db
    .select({ e: experiments, adapter: adapters.name, tenantId: adapters.tenantId })
    .from(experiments)
    .innerJoin(adapters, eq(adapters.id, experiments.adapterId))
    .where(eq(experiments.id, id));
  if (!row) return undefined;
  const arms = await db
    .select()
    .from(experimentArms)
    .where(eq(experimentArms.experimentId, id))
    .orderBy(asc(experimentArms.position));
  return {
    id: row.e.id,
    name: row.e.name,
    adapter: row.adapter,
    adapterId: row.e.adapterId,
    tenantId: row.tenantId,
    status: row.e.status,
    killed: row.e.killed,
    arms: arms.map(({ name, version, alias, weight }) => ({ name, version, alias, weight })),
    createdAt: row.e.createdAt,
    updatedAt: row.e.updatedAt,
  };
}

/** The experiment a viewer may see (404 otherwise, like adapters). */
export async function findVisibleExperiment(db: Db, id: string, viewer: Viewer | null): Promise<Experiment> {
  const e = await getExperiment(db, id);
  if (!e) throw notFound(`experiment "${id}" not found`, 'experiment_not_found');
  const [a] = await db.select().from(adapters).where(eq(adapters.id, e.adapterId));
  if (!canSee(viewer, a)) throw notFound(`experiment "${id}" not found`, 'experiment_not_found');
  return e;
}

/** The adapter's running experiment that is not killed: what `ADAPTER` alone resolves through. */
export async function getRunningExperiment(db: Db, adapter: AdapterRow): Promise<Experiment | undefined> {
  const [row] = await db
    .select({ id: experiments.id })
    .from(experiments)
    .where(
      and(eq(experiments.adapterId, adapter.id), eq(experiments.status, 'running'), eq(experiments.killed, false)),
    );
  return row ? getExperiment(db, row.id) : undefined;
}

/** The adapter's running experiment, killed or not: a killed one sends every unit to its control arm. */
export async function getActiveExperiment(db: Db, adapter: AdapterRow): Promise<Experiment | undefined> {
  const [row] = await db
    .select({ id: experiments.id })
    .from(experiments)
    .where(and(eq(experiments.adapterId, adapter.id), eq(experiments.status, 'running')));
  return row ? getExperiment(db, row.id) : undefined;
}

export async function listExperiments(db: Db, adapter: AdapterRow): Promise<Experiment[]> {
  const rows = await db
    .select({ id: experiments.id })
    .from(experiments)
    .where(eq(experiments.adapterId, adapter.id))
    .orderBy(desc(experiments.createdAt));
  return (await Promise.all(rows.map((r) => getExperiment(db, r.id)))).filter((e): e is Experiment => !!e);
}
