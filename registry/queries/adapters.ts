import { and, asc, desc, eq, gt, inArray, lt, or, sql, type SQL } from 'drizzle-orm';
import type { ModelConfig } from '../../src/engine/model/config.ts';
import { isOperator, type Principal } from '../../src/http/principal.ts';
import type { Db, RegistryDb } from '../db/index.ts';
import { ApiError, conflict, notFound } from '../../src/http/errors.ts';
import { invalidRef, parseRef, servingCheck, type Ref } from '../names.ts';
import {
  adapterFiles,
  adapters,
  adapterVersions,
  aliases,
  baseModelFiles,
  baseModels,
  baseModelVersions,
  experimentArms,
  experiments,
  type FileEntry,
  type TokenizerInfo,
  type Visibility,
  type VersionStatus,
} from '../schema.ts';

export type AdapterRow = typeof adapters.$inferSelect;
type AdapterVersionRow = typeof adapterVersions.$inferSelect;

/** Who is looking: adapters are visible to their tenant, to everyone when public, and to the operator. */
export interface Viewer {
  tenantId: string;
  operator: boolean;
}

export function viewerOf(p: Principal): Viewer {
  return { tenantId: p.tenantId, operator: isOperator(p) };
}

export function canSee(viewer: Viewer | null, a: Pick<AdapterRow, 'tenantId' | 'visibility'>): boolean {
  return !viewer || viewer.operator || a.tenantId === viewer.tenantId || a.visibility === 'public';
}

export function canWrite(viewer: Viewer | null, a: Pick<AdapterRow, 'tenantId'>): boolean {
  return !viewer || viewer.operator || a.tenantId === viewer.tenantId;
}

function visibleTo(viewer: Viewer | null): SQL | undefined {
  if (!viewer || viewer.operator) return undefined;
  return or(eq(adapters.tenantId, viewer.tenantId), eq(adapters.visibility, 'public'));
}

export async function getAdapter(db: Db, name: string): Promise<AdapterRow | undefined> {
  const [row] = await db.select().from(adapters).where(eq(adapters.name, name)).limit(1);
  return row;
}

/** The adapter if `viewer` may see it; otherwise 404, exactly as if it did not exist. */
export async function findVisibleAdapter(db: Db, name: string, viewer: Viewer | null): Promise<AdapterRow> {
  const row = await getAdapter(db, name);
  if (!row || !canSee(viewer, row)) throw notFound(`adapter "${name}" not found`, 'adapter_not_found');
  return row;
}

/** The adapter if `viewer` may change it: 404 when invisible, 403 when visible but someone else's. */
export async function findWritableAdapter(db: Db, name: string, viewer: Viewer | null): Promise<AdapterRow> {
  const row = await findVisibleAdapter(db, name, viewer);
  if (!canWrite(viewer, row)) throw new ApiError(403, `adapter "${name}" belongs to another tenant`, 'not_owner');
  return row;
}

export interface VersionSummary {
  id: string;
  version: number;
  status: VersionStatus;
  kind: 'vlm' | 'lora';
  sha256: string;
  behaviorSha256: string | null;
  bytes: number;
  params: number;
  paramsPctOfBase: number;
  base: string;
  baseVersion: number;
  tags: string[];
  createdAt: Date;
}

const summaryColumns = {
  id: adapterVersions.id,
  adapterId: adapterVersions.adapterId,
  version: adapterVersions.version,
  status: adapterVersions.status,
  kind: adapterVersions.kind,
  sha256: adapterVersions.sha256,
  behaviorSha256: adapterVersions.behaviorSha256,
  bytes: adapterVersions.bytes,
  params: adapterVersions.params,
  paramsPctOfBase: adapterVersions.paramsPctOfBase,
  base: baseModels.name,
  baseVersion: baseModelVersions.version,
  tags: adapterVersions.tags,
  createdAt: adapterVersions.createdAt,
};

function summaries(db: Db) {
  return db
    .select(summaryColumns)
    .from(adapterVersions)
    .innerJoin(baseModelVersions, eq(baseModelVersions.id, adapterVersions.baseVersionId))
    .innerJoin(baseModels, eq(baseModels.id, baseModelVersions.modelId));
}

export interface AdapterListItem extends AdapterRow {
  latest: VersionSummary | null;
  versions: number;
  aliases: Record<string, number>;
}

export interface AdapterFilter {
  /** Base model name, or `NAME@VERSION`. */
  base?: string;
  task?: string;
  tag?: string;
  /** Free text: name, task, description, model card, dataset. */
  q?: string;
  /** Only this tenant's adapters. */
  tenant?: string;
  cursor?: string;
  limit?: number;
}

export interface Page<T> {
  data: T[];
  nextCursor: string | null;
}

/** Adapters `viewer` may see, by name, with keyset pagination (`cursor` = the last name seen, opaque). */
export async function listAdapters(
  db: Db,
  viewer: Viewer | null,
  f: AdapterFilter = {},
): Promise<Page<AdapterListItem>> {
  const limit = Math.min(Math.max(f.limit ?? 50, 1), 200);
  const conds: (SQL | undefined)[] = [visibleTo(viewer)];
  if (f.tenant) conds.push(eq(adapters.tenantId, f.tenant));
  if (f.task) conds.push(eq(adapters.task, f.task));
  if (f.base) {
    const ref = parseRef(f.base);
    const name = ref?.name ?? f.base;
    conds.push(sql`exists (select 1 from ${adapterVersions} v join ${baseModelVersions} bv on bv.id = v.base_version_id
      join ${baseModels} m on m.id = bv.model_id where v.adapter_id = ${adapters.id} and v.status <> 'yanked'
      and m.name = ${name}${ref?.version !== undefined ? sql` and bv.version = ${ref.version}` : sql``})`);
  }
  if (f.tag) {
    conds.push(sql`exists (select 1 from ${adapterVersions} v, json_each(v.tags) t
      where v.adapter_id = ${adapters.id} and v.status <> 'yanked' and t.value = ${f.tag})`);
  }
  if (f.q) {
    const like = `%${f.q.replace(/[\\%_]/g, (ch) => `\\${ch}`)}%`;
    conds.push(sql`(${adapters.name} like ${like} escape '\\' or ${adapters.task} like ${like} escape '\\'
      or ${adapters.description} like ${like} escape '\\'
      or exists (select 1 from ${adapterVersions} v where v.adapter_id = ${adapters.id}
        and (v.card like ${like} escape '\\' or v.dataset like ${like} escape '\\')))`);
  }
  const after = f.cursor ? decodeCursor(f.cursor) : undefined;
  if (after !== undefined) conds.push(gt(adapters.name, String(after)));
  const rows = await db
    .select()
    .from(adapters)
    .where(and(...conds))
    .orderBy(asc(adapters.name))
    .limit(limit + 1);
  const page = rows.slice(0, limit);
  return {
    data: await decorate(db, page),
    nextCursor: rows.length > limit ? encodeCursor(page[page.length - 1].name) : null,
  };
}

/** Adds each adapter's latest version, version count and aliases (three queries for the whole page). */
export async function decorate(db: Db, rows: AdapterRow[]): Promise<AdapterListItem[]> {
  if (!rows.length) return [];
  const ids = rows.map((r) => r.id);
  const sameAdapter = sql`v2.adapter_id = ${adapterVersions.adapterId}`;
  const latest = await summaries(db).where(
    and(
      inArray(adapterVersions.adapterId, ids),
      sql`${adapterVersions.version} = (select max(v2.version) from ${adapterVersions} v2 where ${sameAdapter})`,
    ),
  );
  const counts = await db
    .select({ adapterId: adapterVersions.adapterId, n: sql<number>`count(*)` })
    .from(adapterVersions)
    .where(inArray(adapterVersions.adapterId, ids))
    .groupBy(adapterVersions.adapterId);
  const aliasRows = await db.select().from(aliases).where(inArray(aliases.adapterId, ids));
  return rows.map((r) => {
    const l = latest.find((v) => v.adapterId === r.id);
    return {
      ...r,
      latest: l ? stripAdapterId(l) : null,
      versions: Number(counts.find((c) => c.adapterId === r.id)?.n ?? 0),
      aliases: Object.fromEntries(aliasRows.filter((a) => a.adapterId === r.id).map((a) => [a.name, a.version])),
    };
  });
}

function stripAdapterId<T extends { adapterId: string }>(v: T): Omit<T, 'adapterId'> {
  const { adapterId: _adapterId, ...rest } = v;
  return rest;
}

export async function listVersions(
  db: Db,
  adapter: AdapterRow,
  page: { cursor?: string; limit?: number } = {},
): Promise<Page<VersionSummary>> {
  const limit = Math.min(Math.max(page.limit ?? 50, 1), 200);
  const before = page.cursor ? Number(decodeCursor(page.cursor)) : undefined;
  const rows = await summaries(db)
    .where(
      and(
        eq(adapterVersions.adapterId, adapter.id),
        before !== undefined && Number.isFinite(before) ? lt(adapterVersions.version, before) : undefined,
      ),
    )
    .orderBy(desc(adapterVersions.version))
    .limit(limit + 1);
  const data = rows.slice(0, limit).map(stripAdapterId);
  return { data, nextCursor: rows.length > limit ? encodeCursor(data[data.length - 1].version) : null };
}

export interface AdapterVersionDetail extends AdapterVersionRow {
  adapter: string;
  files: FileEntry[];
  base: {
    name: string;
    version: number;
    id: string;
    architecture: string;
    sha256: string;
    params: number;
    config: ModelConfig;
    tokenizer: TokenizerInfo | null;
    status: VersionStatus;
    files: FileEntry[];
  };
}

export async function getVersion(
  db: Db,
  adapter: AdapterRow,
  version: number,
): Promise<AdapterVersionDetail | undefined> {
  const [row] = await db
    .select({ v: adapterVersions, bv: baseModelVersions, model: baseModels.name })
    .from(adapterVersions)
    .innerJoin(baseModelVersions, eq(baseModelVersions.id, adapterVersions.baseVersionId))
    .innerJoin(baseModels, eq(baseModels.id, baseModelVersions.modelId))
    .where(and(eq(adapterVersions.adapterId, adapter.id), eq(adapterVersions.version, version)))
    .limit(1);
  if (!row) return undefined;
  const files = await db
    .select()
    .from(adapterFiles)
    .where(eq(adapterFiles.versionId, row.v.id))
    .orderBy(asc(adapterFiles.name));
  const baseFiles = await db
    .select()
    .from(baseModelFiles)
    .where(eq(baseModelFiles.versionId, row.bv.id))
    .orderBy(asc(baseModelFiles.name));
  return {
    ...row.v,
    adapter: adapter.name,
    files: files.map(({ name, sha256, bytes }) => ({ name, sha256, bytes })),
    base: {
      name: row.model,
      version: row.bv.version,
      id: row.bv.id,
      architecture: row.bv.architecture,
      sha256: row.bv.sha256,
      params: row.bv.params,
      config: row.bv.config,
      tokenizer: row.bv.tokenizer ?? null,
      status: row.bv.status,
      files: baseFiles.map(({ name, sha256, bytes }) => ({ name, sha256, bytes })),
    },
  };
}

/** How a reference was resolved. */
type ResolvedVia = 'pin' | 'alias' | 'default';

export interface ResolvedAdapter {
  adapter: AdapterRow;
  version: AdapterVersionDetail;
  via: ResolvedVia;
  alias?: string;
  /** Set when the version is deprecated: serve it, but say so (e.g. in an x-versa-warning header). */
  warning?: string;
}

/**
 * Resolves `NAME`, `NAME@VERSION` or `NAME@ALIAS` to one concrete adapter version with its base
 * version and files. `NAME` alone means alias `production`, else the latest active version
 * (running experiments are resolveModel's business). Throws ApiError: 404
 * (unknown or invisible adapter, version or alias), 410 (yanked version).
 */
export async function resolveAdapter(db: Db, ref: string | Ref, viewer: Viewer | null): Promise<ResolvedAdapter> {
  const parsed = typeof ref === 'string' ? parseRef(ref) : ref;
  if (!parsed) throw invalidRef(String(ref));
  const adapter = await findVisibleAdapter(db, parsed.name, viewer);
  let number: number | undefined = parsed.version;
  let via: ResolvedVia = 'pin';
  let alias: string | undefined;
  if (parsed.alias !== undefined) {
    const [row] = await db
      .select()
      .from(aliases)
      .where(and(eq(aliases.adapterId, adapter.id), eq(aliases.name, parsed.alias)));
    if (!row) throw notFound(`adapter "${adapter.name}" has no alias "${parsed.alias}"`, 'alias_not_found');
    number = row.version;
    via = 'alias';
    alias = parsed.alias;
  } else if (number === undefined) {
    const [prod] = await db
      .select()
      .from(aliases)
      .where(and(eq(aliases.adapterId, adapter.id), eq(aliases.name, 'production')));
    via = 'default';
    if (prod) {
      number = prod.version;
      alias = 'production';
    } else {
      const [latest] = await db
        .select({ version: adapterVersions.version })
        .from(adapterVersions)
        .where(and(eq(adapterVersions.adapterId, adapter.id), eq(adapterVersions.status, 'active')))
        .orderBy(desc(adapterVersions.version))
        .limit(1);
      if (!latest) throw notFound(`adapter "${adapter.name}" has no active version`, 'version_not_found');
      number = latest.version;
    }
  }
  const version = await getVersion(db, adapter, number!);
  if (!version) throw notFound(`adapter "${adapter.name}" has no version ${number}`, 'version_not_found');
  return { adapter, version, via, alias, ...servingCheck(adapter.name, version.version, version.status) };
}

/** Changes a version's status (the only thing about a version that ever changes). */
export async function setVersionStatus(
  r: RegistryDb,
  adapter: AdapterRow,
  version: number,
  status: VersionStatus,
): Promise<AdapterVersionDetail> {
  const v = await getVersion(r.db, adapter, version);
  if (!v) throw notFound(`adapter "${adapter.name}" has no version ${version}`, 'version_not_found');
  if (status === 'yanked' && v.status !== 'yanked') {
    // Never leave an alias or an experiment arm pointing at something that refuses to serve.
    const pointing = await r.db
      .select({ name: aliases.name })
      .from(aliases)
      .where(and(eq(aliases.adapterId, adapter.id), eq(aliases.version, version)));
    if (pointing.length) {
      throw conflict(
        `alias ${pointing.map((a) => `"${a.name}"`).join(', ')} points to version ${version}: move it first`,
        'version_in_use',
      );
    }
    const arms = await r.db
      .select({ id: experiments.id })
      .from(experimentArms)
      .innerJoin(experiments, eq(experiments.id, experimentArms.experimentId))
      .where(
        and(
          eq(experiments.adapterId, adapter.id),
          eq(experiments.status, 'running'),
          eq(experimentArms.version, version),
        ),
      );
    if (arms.length)
      throw conflict(`running experiment ${arms[0].id} serves version ${version}: stop it first`, 'version_in_use');
  }
  await r.db.update(adapterVersions).set({ status }).where(eq(adapterVersions.id, v.id));
  return { ...v, status };
}

export async function updateAdapter(
  r: RegistryDb,
  adapter: AdapterRow,
  patch: { visibility?: Visibility; task?: string | null; description?: string | null; chatTemplate?: string | null },
): Promise<AdapterRow> {
  const set = Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined));
  if (Object.keys(set).length) await r.db.update(adapters).set(set).where(eq(adapters.id, adapter.id));
  return { ...adapter, ...set };
}

export function encodeCursor(value: string | number): string {
  return btoa(JSON.stringify([value]))
    .replace(/\+/g, '-')
    .replace(/\//g, '_')
    .replace(/=+$/, '');
}

export function decodeCursor(cursor: string): string | number {
  try {
    const [value] = JSON.parse(atob(cursor.replace(/-/g, '+').replace(/_/g, '/'))) as [unknown];
    if (typeof value === 'string' || typeof value === 'number') return value;
  } catch {
    // fall through
  }
  throw new ApiError(400, 'invalid cursor', 'invalid_cursor', 'cursor');
}
