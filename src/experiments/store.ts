import { and, asc, desc, eq, sql } from 'drizzle-orm';
import type { Db, RegistryDb, Statement } from '../../registry/db/index.ts';
import { isUniqueViolation } from '../../registry/db/index.ts';
import { ApiError, conflict, notFound } from '../http/errors.ts';
import { adapters, experimentArms, experimentHistory, experimentPeriods, experiments } from '../../registry/schema.ts';
import { aliasMoveStatements, getAlias } from '../../registry/queries/aliases.ts';
import { canWrite, getVersion, type AdapterRow, type Viewer } from '../../registry/queries/adapters.ts';
import {
  armsOf,
  DEFAULT_METRIC,
  isLive,
  metricsOf,
  promotableArm,
  transitionOf,
  type Arm,
  type ArmInput,
  type Experiment,
  type ExperimentInput,
  type ExperimentPatch,
} from './lifecycle.ts';

/** Experiments in the registry database: what lifecycle.ts decides, written atomically. */

type By = { keyId?: string | null; now: Date };

/** An input's arms (lifecycle.ts checks their shape): every pinned version exists, unyanked; every alias exists. */
async function checkArms(db: Db, adapter: AdapterRow, inputs: ArmInput[]): Promise<Arm[]> {
  const arms = armsOf(inputs);
  for (const a of arms) {
    if (a.version !== null) {
      const v = await getVersion(db, adapter, a.version);
      if (!v) throw notFound(`adapter "${adapter.name}" has no version ${a.version}`, 'version_not_found');
      if (v.status === 'yanked') throw new ApiError(409, `${adapter.name}@${a.version} is yanked`, 'version_yanked');
    } else if (!(await getAlias(db, adapter, a.alias!))) {
      throw notFound(`adapter "${adapter.name}" has no alias "${a.alias}"`, 'alias_not_found');
    }
  }
  return arms;
}

function armStatements(db: Db, experimentId: string, arms: Arm[]): Statement[] {
  return [db.insert(experimentArms).values(arms.map((a, position) => ({ experimentId, position, ...a })))];
}

function historyStatement(db: Db, experimentId: string, kind: string, detail: Record<string, unknown>, by: By) {
  return db.insert(experimentHistory).values({ experimentId, kind, detail, at: by.now, by: by.keyId ?? null });
}

/**
 * What starting an experiment writes: every arm's version fixed (an alias arm's current target),
 * the weights of its first period, and a history entry. The experiment then serves exactly these
 * versions, whatever later happens to the aliases.
 */
async function startStatements(r: RegistryDb, id: string, adapter: AdapterRow, arms: Arm[], period: number, by: By) {
  const resolved: number[] = [];
  for (const a of arms) {
    const v = a.version ?? (await getAlias(r.db, adapter, a.alias!))?.version;
    if (v === undefined) throw conflict(`alias "${a.alias}" of arm "${a.name}" no longer exists`, 'alias_not_found');
    resolved.push(v);
  }
  return [
    ...resolved.map((v, position) =>
      r.db
        .update(experimentArms)
        .set({ resolvedVersion: v })
        .where(and(eq(experimentArms.experimentId, id), eq(experimentArms.position, position))),
    ),
    r.db
      .insert(experimentPeriods)
      .values({ experimentId: id, period, weights: arms.map((a) => a.weight), startedAt: by.now })
      .onConflictDoNothing(),
    historyStatement(
      r.db,
      id,
      'start',
      { versions: Object.fromEntries(arms.map((a, i) => [a.name, resolved[i]])) },
      by,
    ),
  ];
}

export async function createExperiment(
  r: RegistryDb,
  adapter: AdapterRow,
  input: ExperimentInput,
  by: By,
): Promise<Experiment> {
  const arms = await checkArms(r.db, adapter, input.arms);
  const metrics = metricsOf(input.metrics);
  const id = `exp_${crypto.randomUUID().replace(/-/g, '').slice(0, 24)}`;
  const running = input.status === 'running';
  try {
    await r.atomic([
      r.db.insert(experiments).values({
        id,
        name: input.name,
        adapterId: adapter.id,
        status: input.status ?? 'draft',
        metrics,
        guardrails: input.guardrails ?? null,
        autoPromote: input.autoPromote ?? false,
        startedAt: running ? by.now : null,
        createdAt: by.now,
        updatedAt: by.now,
        createdBy: by.keyId ?? null,
      }),
      ...armStatements(r.db, id, arms),
      ...(running ? await startStatements(r, id, adapter, arms, 0, by) : []),
    ]);
  } catch (e) {
    throw runningConflict(e, adapter);
  }
  return (await getExperiment(r.db, id))!;
}

function runningConflict(e: unknown, adapter: AdapterRow): unknown {
  return isUniqueViolation(e)
    ? conflict(`adapter "${adapter.name}" already has a running experiment`, 'experiment_running')
    : e;
}

export async function updateExperiment(
  r: RegistryDb,
  current: Experiment,
  adapter: AdapterRow,
  patch: ExperimentPatch,
  by: By,
): Promise<Experiment> {
  const { starting, stopping, ramping, killing } = transitionOf(current, patch);
  const arms = patch.arms && (await checkArms(r.db, adapter, patch.arms));
  const set: Partial<typeof experiments.$inferInsert> = { updatedAt: by.now };
  const statements: Statement[] = [];
  if (patch.name !== undefined) set.name = patch.name;
  if (patch.metrics !== undefined) set.metrics = metricsOf(patch.metrics);
  if (patch.guardrails !== undefined) set.guardrails = patch.guardrails;
  if (patch.autoPromote !== undefined) set.autoPromote = patch.autoPromote;
  if (killing) {
    set.killed = patch.killed;
    statements.push(historyStatement(r.db, current.id, patch.killed ? 'kill' : 'unkill', {}, by));
  }
  if (patch.status !== undefined) set.status = patch.status;
  if (starting) set.startedAt = by.now;
  if (stopping) Object.assign(set, { stoppedAt: by.now, stopReason: 'stopped by request' });
  const finalArms = arms ?? current.arms.map((a, i) => ({ ...a, weight: patch.weights?.[i] ?? a.weight }));
  if (ramping) {
    // A ramp while running opens a new period: units first seen from now on follow the new weights.
    set.period = current.period + 1;
    statements.push(
      r.db.insert(experimentPeriods).values({
        experimentId: current.id,
        period: current.period + 1,
        weights: patch.weights!,
        startedAt: by.now,
      }),
      historyStatement(r.db, current.id, 'weights', { weights: patch.weights }, by),
    );
  }
  if (arms || patch.weights)
    statements.push(
      r.db.delete(experimentArms).where(eq(experimentArms.experimentId, current.id)),
      ...armStatements(r.db, current.id, finalArms),
    );
  if (starting) statements.push(...(await startStatements(r, current.id, adapter, finalArms, current.period, by)));
  if (stopping) statements.push(historyStatement(r.db, current.id, 'stop', { reason: 'stopped by request' }, by));
  try {
    await r.atomic([r.db.update(experiments).set(set).where(eq(experiments.id, current.id)), ...statements]);
  } catch (e) {
    throw runningConflict(e, adapter);
  }
  return (await getExperiment(r.db, current.id))!;
}

/** Stops a running experiment for a reason (a guardrail, a promotion), in history. No-op if it stopped already. */
function stopStatements(db: Db, e: Experiment, kind: string, reason: string, by: By): Statement[] {
  return [
    // History first, and only if it still runs: two concurrent stops leave one entry.
    db.insert(experimentHistory).select(
      sql`select null, ${e.id}, ${kind}, ${JSON.stringify({ reason })}, ${by.now.getTime()}, ${by.keyId ?? null}
          where exists (select 1 from experiments where id = ${e.id} and status = 'running')`,
    ),
    db
      .update(experiments)
      .set({ status: 'stopped', stoppedAt: by.now, stopReason: reason, updatedAt: by.now })
      .where(and(eq(experiments.id, e.id), eq(experiments.status, 'running'))),
  ];
}

/**
 * A guardrail's verdict: the kill switch goes on (every unit is served the control arm, nothing more
 * is counted) with the reason in history and `stop_reason`. The experiment stays running, killed, so
 * that its results and the control routing stay in place until someone stops or promotes it.
 */
export async function haltExperiment(r: RegistryDb, e: Experiment, reason: string, by: By) {
  if (!isLive(e)) return;
  const live = and(eq(experiments.id, e.id), eq(experiments.status, 'running'), eq(experiments.killed, false));
  await r.atomic([
    // History first, and only if it is still live: two concurrent halts leave one entry.
    r.db.insert(experimentHistory).select(
      sql`select null, ${e.id}, 'guardrail', ${JSON.stringify({ reason })}, ${by.now.getTime()}, ${by.keyId ?? null}
          where exists (select 1 from experiments where id = ${e.id} and status = 'running' and killed = 0)`,
    ),
    r.db.update(experiments).set({ killed: true, stopReason: reason, updatedAt: by.now }).where(live),
  ]);
}

/**
 * Promotion: the adapter's `production` alias moves to the arm's version and the experiment
 * stops, in one write; the alias history names the experiment as the reason.
 */
export async function promoteArm(
  r: RegistryDb,
  e: Experiment,
  armName: string,
  by: By & { auto?: boolean },
): Promise<{ version: number; previousVersion: number | null }> {
  const arm = promotableArm(e, armName);
  const [adapter] = await r.db.select().from(adapters).where(eq(adapters.id, e.adapterId));
  const previous = (await getAlias(r.db, adapter, 'production'))?.version ?? null;
  const reason = `experiment ${e.id} (${e.name}): ${by.auto ? 'auto-promoted' : 'promoted'} arm "${arm.name}"`;
  await r.atomic([
    ...aliasMoveStatements(r.db, e.adapterId, 'production', arm.resolvedVersion, { ...by, reason }),
    ...stopStatements(r.db, e, by.auto ? 'auto_promote' : 'promote', reason, by),
  ]);
  return { version: arm.resolvedVersion, previousVersion: previous };
}

export interface HistoryEntry {
  kind: string;
  detail: Record<string, unknown>;
  at: Date;
  by: string | null;
}

export async function experimentHistoryOf(db: Db, id: string): Promise<HistoryEntry[]> {
  const rows = await db
    .select()
    .from(experimentHistory)
    .where(eq(experimentHistory.experimentId, id))
    .orderBy(asc(experimentHistory.id));
  return rows.map(({ kind, detail, at, by }) => ({ kind, detail, at, by }));
}

export async function getExperiment(db: Db, id: string): Promise<Experiment | undefined> {
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
  const e = row.e;
  return {
    id: e.id,
    name: e.name,
    adapter: row.adapter,
    adapterId: e.adapterId,
    tenantId: row.tenantId,
    status: e.status,
    killed: e.killed,
    arms: arms.map(({ name, version, alias, weight, resolvedVersion }) => ({
      name,
      version,
      alias,
      weight,
      resolvedVersion,
    })),
    metrics: e.metrics?.length ? e.metrics : [DEFAULT_METRIC],
    guardrails: e.guardrails ?? {},
    autoPromote: e.autoPromote,
    period: e.period,
    startedAt: e.startedAt,
    stoppedAt: e.stoppedAt,
    stopReason: e.stopReason,
    createdAt: e.createdAt,
    updatedAt: e.updatedAt,
  };
}

/**
 * The experiment if `viewer` owns it (its adapter's tenant, or the operator); otherwise 404, exactly
 * as if it did not exist: an experiment, its results and its history are its tenant's business,
 * even on a public adapter.
 */
export async function findOwnExperiment(db: Db, id: string, viewer: Viewer | null): Promise<Experiment> {
  const e = await getExperiment(db, id);
  if (!e || !canWrite(viewer, e)) throw notFound(`experiment "${id}" not found`, 'experiment_not_found');
  return e;
}

/** The adapter's running experiment that is not killed. */
export async function getRunningExperiment(db: Db, adapter: AdapterRow): Promise<Experiment | undefined> {
  const e = await getActiveExperiment(db, adapter);
  return e && !e.killed ? e : undefined;
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

/** The SQL condition under which an event counts: the experiment is running and not killed, now. */
// Plain identifiers (not drizzle column objects): these conditions are built for every event, and
// rendering column objects costs far more than the query itself.
export const countingNow = (experimentId: string) =>
  sql`exists (select 1 from experiments where id = ${experimentId} and status = 'running' and killed = 0)`;
