import { and, asc, desc, eq, lt, sql } from 'drizzle-orm';
import type { Db, RegistryDb, Statement } from '../db/index.ts';
import { ApiError, conflict, notFound } from '../../src/http/errors.ts';
import { aliases, aliasHistory, apiKeys, experimentArms, experimentHistory, experiments } from '../schema.ts';
import { decodeCursor, encodeCursor, getVersion, type AdapterRow, type Page } from './adapters.ts';

export type AliasRow = typeof aliases.$inferSelect;

export interface AliasMove {
  id: number;
  alias: string;
  fromVersion: number | null;
  toVersion: number;
  /** set: first time; move: to a later version; rollback: to an earlier one. */
  kind: 'set' | 'move' | 'rollback';
  reason: string | null;
  movedAt: Date;
  movedBy: { keyId: string; keyName: string; tenantId: string } | null;
}

export async function listAliases(db: Db, adapter: AdapterRow): Promise<AliasRow[]> {
  return db.select().from(aliases).where(eq(aliases.adapterId, adapter.id)).orderBy(asc(aliases.name));
}

export async function getAlias(db: Db, adapter: AdapterRow, alias: string): Promise<AliasRow | undefined> {
  const [row] = await db
    .select()
    .from(aliases)
    .where(and(eq(aliases.adapterId, adapter.id), eq(aliases.name, alias)));
  return row;
}

/**
 * The statements that point `alias` at the version `toVersion` (a number, or an SQL expression for
 * a version inserted in the same batch) and record the move in the history. The history row is
 * written first so that its `from_version` reads the alias before the move.
 */
export function aliasMoveStatements(
  db: Db,
  adapterId: string,
  alias: string,
  toVersion: number | ReturnType<typeof sql>,
  by: { keyId?: string | null; reason?: string | null; now: Date },
): Statement[] {
  const thisAlias = sql`${aliases.adapterId} = ${adapterId} and ${aliases.name} = ${alias}`;
  return [
    db.insert(aliasHistory).values({
      adapterId,
      alias,
      fromVersion: sql`(select ${aliases.version} from ${aliases} where ${thisAlias})`,
      toVersion,
      reason: by.reason ?? null,
      movedAt: by.now,
      movedBy: by.keyId ?? null,
    }),
    db
      .insert(aliases)
      .values({ adapterId, name: alias, version: toVersion, updatedAt: by.now, updatedBy: by.keyId ?? null })
      .onConflictDoUpdate({
        target: [aliases.adapterId, aliases.name],
        set: {
          version: sql`excluded.version`,
          updatedAt: sql`excluded.updated_at`,
          updatedBy: sql`excluded.updated_by`,
        },
      }),
  ];
}

export interface SetAliasResult {
  alias: string;
  version: number;
  previousVersion: number | null;
  changed: boolean;
  /** Set when the target is deprecated. */
  warning?: string;
}

/** The 409 for moving an alias that a running experiment's arm is defined by. */
export function aliasInExperiment(experiment: { id: string; name: string }, alias: string): ApiError {
  return conflict(
    `alias "${alias}" is an arm of running experiment ${experiment.id} ("${experiment.name}"): ` +
      'stop it first, or move the alias with force (recorded in its history)',
    'alias_in_experiment',
  );
}

type MoveBy = { keyId?: string | null; reason?: string | null; now: Date; force?: boolean };

/**
 * The running experiment (killed or not) with an arm on `alias`, if any: moving that alias needs
 * force. Read from the experiment tables here: src/experiments builds on the registry, not the reverse.
 */
export async function experimentOnAlias(
  db: Db,
  adapter: AdapterRow,
  alias: string,
): Promise<{ id: string; name: string } | undefined> {
  const [row] = await db
    .select({ id: experiments.id, name: experiments.name })
    .from(experiments)
    .innerJoin(experimentArms, eq(experimentArms.experimentId, experiments.id))
    .where(
      and(eq(experiments.adapterId, adapter.id), eq(experiments.status, 'running'), eq(experimentArms.alias, alias)),
    )
    .limit(1);
  return row;
}

/** The entry a forced move of an experiment's alias leaves in the experiment's history. */
function forcedMoveStatement(db: Db, experimentId: string, alias: string, toVersion: number, by: MoveBy) {
  const entry = { experimentId, kind: 'alias_forced', detail: { alias, to_version: toVersion } };
  return db.insert(experimentHistory).values({ ...entry, at: by.now, by: by.keyId ?? null });
}

/**
 * Points an alias at an existing, not yanked version (set, move or roll back: all the same write).
 * An alias that is an arm of a running experiment moves only with `force` (409 naming the
 * experiment otherwise); a forced move is written to the experiment's history too. The experiment
 * keeps serving the version it resolved when it started either way.
 */
export async function setAlias(
  r: RegistryDb,
  adapter: AdapterRow,
  alias: string,
  version: number,
  by: MoveBy,
): Promise<SetAliasResult> {
  const target = await getVersion(r.db, adapter, version);
  if (!target) throw notFound(`adapter "${adapter.name}" has no version ${version}`, 'version_not_found');
  if (target.status === 'yanked')
    throw new ApiError(409, `${adapter.name}@${version} is yanked: an alias cannot point to it`, 'version_yanked');
  const current = await getAlias(r.db, adapter, alias);
  const warning = target.status === 'deprecated' ? `${adapter.name}@${version} is deprecated` : undefined;
  if (current?.version === version) return { alias, version, previousVersion: version, changed: false, warning };
  const experiment = await experimentOnAlias(r.db, adapter, alias);
  if (experiment && !by.force) throw aliasInExperiment(experiment, alias);
  await r.atomic([
    ...aliasMoveStatements(r.db, adapter.id, alias, version, by),
    ...(experiment ? [forcedMoveStatement(r.db, experiment.id, alias, version, by)] : []),
  ]);
  return { alias, version, previousVersion: current?.version ?? null, changed: true, warning };
}

/** Rollback in one call: back to the version the alias pointed to before its latest move. */
export async function rollbackAlias(
  r: RegistryDb,
  adapter: AdapterRow,
  alias: string,
  by: MoveBy,
): Promise<SetAliasResult> {
  const current = await getAlias(r.db, adapter, alias);
  if (!current) throw notFound(`adapter "${adapter.name}" has no alias "${alias}"`, 'alias_not_found');
  const [last] = await r.db
    .select()
    .from(aliasHistory)
    .where(and(eq(aliasHistory.adapterId, adapter.id), eq(aliasHistory.alias, alias)))
    .orderBy(desc(aliasHistory.id))
    .limit(1);
  if (!last || last.fromVersion === null)
    throw conflict(`alias "${alias}" has no earlier version to roll back to`, 'nothing_to_roll_back');
  return setAlias(r, adapter, alias, last.fromVersion, {
    ...by,
    reason: by.reason ?? `rollback from version ${current.version}`,
  });
}

/** The alias's moves, newest first, with who made each. */
export async function aliasHistoryPage(
  db: Db,
  adapter: AdapterRow,
  alias: string,
  page: { cursor?: string; limit?: number } = {},
): Promise<Page<AliasMove>> {
  const limit = Math.min(Math.max(page.limit ?? 50, 1), 200);
  const before = page.cursor ? Number(decodeCursor(page.cursor)) : undefined;
  const rows = await db
    .select({ h: aliasHistory, keyName: apiKeys.name, tenantId: apiKeys.tenantId })
    .from(aliasHistory)
    .leftJoin(apiKeys, eq(apiKeys.id, aliasHistory.movedBy))
    .where(
      and(
        eq(aliasHistory.adapterId, adapter.id),
        eq(aliasHistory.alias, alias),
        before !== undefined ? lt(aliasHistory.id, before) : undefined,
      ),
    )
    .orderBy(desc(aliasHistory.id))
    .limit(limit + 1);
  const data = rows.slice(0, limit).map(({ h, keyName, tenantId }) => ({
    id: h.id,
    alias: h.alias,
    fromVersion: h.fromVersion,
    toVersion: h.toVersion,
    kind: (h.fromVersion === null ? 'set' : h.toVersion < h.fromVersion ? 'rollback' : 'move') as AliasMove['kind'],
    reason: h.reason,
    movedAt: h.movedAt,
    movedBy: h.movedBy ? { keyId: h.movedBy, keyName: keyName ?? '', tenantId: tenantId ?? '' } : null,
  }));
  return { data, nextCursor: rows.length > limit ? encodeCursor(data[data.length - 1].id) : null };
}
