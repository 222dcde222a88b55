import { and, asc, desc, eq, inArray, lt, sql } from 'drizzle-orm';
import { parameterCount, type ModelConfig } from '../../src/engine/model/config.ts';
import type { Db, RegistryDb } from '../db/index.ts';
import { isUniqueViolation } from '../db/index.ts';
import { manifestDigest } from '../digest.ts';
import { conflict, notFound } from '../../src/http/errors.ts';
import {
  adapters,
  baseModelFiles,
  baseModels,
  baseModelVersions,
  type FileEntry,
  type TokenizerInfo,
  type VersionStatus,
} from '../schema.ts';

export type BaseModelRow = typeof baseModels.$inferSelect;
type BaseVersionRow = typeof baseModelVersions.$inferSelect;

export interface BaseVersion extends BaseVersionRow {
  model: string;
  files: FileEntry[];
}

/** What registering a base model version takes: metadata only, the weights stay on the compute nodes. */
export interface BaseVersionInput {
  architecture: string;
  config: ModelConfig;
  tokenizer?: TokenizerInfo | null;
  files: FileEntry[];
  /** Defaults to the count implied by the config. */
  params?: number;
  notes?: string | null;
}

export async function getBaseModel(db: Db, name: string): Promise<BaseModelRow | undefined> {
  const [row] = await db.select().from(baseModels).where(eq(baseModels.name, name)).limit(1);
  return row;
}

export async function listBaseModels(
  db: Db,
): Promise<Array<BaseModelRow & { latestVersion: number | null; versions: number }>> {
  const rows = await db
    .select({
      model: baseModels,
      // Raw names: drizzle leaves columns unqualified in a select list, which a subquery would capture.
      latestVersion: sql<
        number | null
      >`(select max(v.version) from base_model_versions v where v.model_id = base_models.id)`,
      versions: sql<number>`(select count(*) from base_model_versions v where v.model_id = base_models.id)`,
    })
    .from(baseModels)
    .orderBy(asc(baseModels.name));
  return rows.map((r) => ({ ...r.model, latestVersion: r.latestVersion, versions: Number(r.versions) }));
}

/** Versions of a base model, newest first; `before` (a version number) pages on. */
export async function listBaseVersions(
  db: Db,
  model: BaseModelRow,
  page: { before?: number; limit?: number } = {},
): Promise<BaseVersion[]> {
  const versions = await db
    .select()
    .from(baseModelVersions)
    .where(
      and(
        eq(baseModelVersions.modelId, model.id),
        page.before !== undefined ? lt(baseModelVersions.version, page.before) : undefined,
      ),
    )
    .orderBy(desc(baseModelVersions.version))
    .limit(page.limit ?? 1000);
  return withFiles(db, model.name, versions);
}

/** A base model version by number, or its latest version that is not yanked when `version` is omitted. */
export async function getBaseVersion(db: Db, name: string, version?: number): Promise<BaseVersion | undefined> {
  const model = await getBaseModel(db, name);
  if (!model) return undefined;
  const where =
    version === undefined
      ? and(eq(baseModelVersions.modelId, model.id), sql`${baseModelVersions.status} <> 'yanked'`)
      : and(eq(baseModelVersions.modelId, model.id), eq(baseModelVersions.version, version));
  const rows = await db.select().from(baseModelVersions).where(where).orderBy(desc(baseModelVersions.version)).limit(1);
  return (await withFiles(db, model.name, rows))[0];
}

/** Every base version's sha256 by NAME@VERSION, and by NAME the one a bare name resolves to (latest not yanked). */
export async function baseDigests(db: Db): Promise<Map<string, string>> {
  const rows = await db
    .select({
      name: baseModels.name,
      version: baseModelVersions.version,
      sha256: baseModelVersions.sha256,
      status: baseModelVersions.status,
    })
    .from(baseModelVersions)
    .innerJoin(baseModels, eq(baseModels.id, baseModelVersions.modelId))
    .orderBy(asc(baseModelVersions.version));
  const digests = new Map<string, string>();
  for (const r of rows) {
    digests.set(`${r.name}@${r.version}`, r.sha256);
    if (r.status !== 'yanked') digests.set(r.name, r.sha256); // ascending: the latest wins
  }
  return digests;
}

async function withFiles(db: Db, model: string, versions: BaseVersionRow[]): Promise<BaseVersion[]> {
  if (!versions.length) return [];
  const files = await db
    .select()
    .from(baseModelFiles)
    .where(
      inArray(
        baseModelFiles.versionId,
        versions.map((v) => v.id),
      ),
    )
    .orderBy(asc(baseModelFiles.name));
  return versions.map((v) => ({
    ...v,
    model,
    files: files.filter((f) => f.versionId === v.id).map(({ name, sha256, bytes }) => ({ name, sha256, bytes })),
  }));
}

/** Creates a base model with no version yet; 409 if the name is taken. */
export async function createBaseModel(
  r: RegistryDb,
  name: string,
  actor: { tenantId: string; description?: string | null; now: Date },
): Promise<BaseModelRow> {
  await refuseAdapterName(r.db, name);
  const row = {
    id: `bm_${crypto.randomUUID()}`,
    name,
    tenantId: actor.tenantId,
    description: actor.description ?? null,
    createdAt: actor.now,
  };
  const inserted = await r.db.insert(baseModels).values(row).onConflictDoNothing().returning();
  if (!inserted.length) throw conflict(`base model "${name}" already exists`, 'model_exists');
  return row;
}

/** `model` names a base model or an adapter: the two never share a name. */
async function refuseAdapterName(db: Db, name: string): Promise<void> {
  const [taken] = await db.select({ id: adapters.id }).from(adapters).where(eq(adapters.name, name)).limit(1);
  if (taken) throw conflict(`"${name}" is the name of an adapter`, 'name_taken');
}

export interface RegisteredBaseVersion {
  model: string;
  version: number;
  id: string;
  sha256: string;
  params: number;
  bytes: number;
  /** True when this call created the model itself. */
  createdModel: boolean;
}

/**
 * Registers a new version of base model `name` (creating the model, owned by `tenantId`, if it does
 * not exist yet). Permission checks are the caller's. One atomic write: model (if new), version
 * (number assigned inside the insert), files.
 */
export async function registerBaseVersion(
  r: RegistryDb,
  name: string,
  input: BaseVersionInput,
  actor: { tenantId: string; keyId?: string | null; description?: string | null; now?: Date; createOnly?: boolean },
): Promise<RegisteredBaseVersion> {
  const now = actor.now ?? new Date();
  const files = input.files;
  const sha256 = await manifestDigest(files);
  const params = input.params ?? parameterCount(input.config);
  const bytes = files.reduce((n, f) => n + f.bytes, 0);
  for (let attempt = 0; ; attempt++) {
    const existing = await getBaseModel(r.db, name);
    if (!existing) await refuseAdapterName(r.db, name);
    if (existing && actor.createOnly) throw conflict(`base model "${name}" already exists`, 'model_exists');
    const modelId = existing?.id ?? `bm_${crypto.randomUUID()}`;
    const versionId = `bmv_${crypto.randomUUID()}`;
    const statements = [];
    if (!existing) {
      statements.push(
        r.db.insert(baseModels).values({
          id: modelId,
          name,
          tenantId: actor.tenantId,
          description: actor.description ?? null,
          createdAt: now,
        }),
      );
    }
    const sameModel = sql`${baseModelVersions.modelId} = ${modelId}`;
    const maxVersion = sql`coalesce(max(${baseModelVersions.version}), 0)`;
    const nextVersion = sql`(select ${maxVersion} + 1 from ${baseModelVersions} where ${sameModel})`;
    statements.push(
      r.db.insert(baseModelVersions).values({
        id: versionId,
        modelId,
        version: nextVersion,
        architecture: input.architecture,
        config: input.config,
        tokenizer: input.tokenizer ?? null,
        params,
        bytes,
        sha256,
        notes: input.notes ?? null,
        createdAt: now,
        createdBy: actor.keyId ?? null,
      }),
    );
    // D1 binds at most 100 parameters per statement: 4 per file row.
    for (let i = 0; i < files.length; i += 24) {
      statements.push(r.db.insert(baseModelFiles).values(files.slice(i, i + 24).map((f) => ({ versionId, ...f }))));
    }
    try {
      await r.atomic(statements);
    } catch (e) {
      // Someone created the model or took the version number at the same moment: read again, retry.
      if (attempt < 3 && isUniqueViolation(e)) continue;
      throw e;
    }
    const [row] = await r.db
      .select({ version: baseModelVersions.version })
      .from(baseModelVersions)
      .where(eq(baseModelVersions.id, versionId));
    return { model: name, version: row.version, id: versionId, sha256, params, bytes, createdModel: !existing };
  }
}

export async function setBaseVersionStatus(
  r: RegistryDb,
  name: string,
  version: number,
  status: VersionStatus,
): Promise<BaseVersion> {
  const v = await getBaseVersion(r.db, name, version);
  if (!v) throw notFound(`base model version ${name}@${version} not found`, 'model_not_found');
  await r.db.update(baseModelVersions).set({ status }).where(eq(baseModelVersions.id, v.id));
  return { ...v, status };
}
