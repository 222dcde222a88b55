import { and, asc, eq, gt, isNull, sql } from 'drizzle-orm';
import type { AdapterManifest } from '../../src/engine/adapters/format.ts';
import { isUniqueViolation, type Db, type RegistryDb, type Statement } from '../db/index.ts';
import { behaviorDigest } from '../digest.ts';
import { conflict } from '../../src/http/errors.ts';
import {
  adapterFiles,
  adapters,
  adapterVersions,
  baseModels,
  baseModelVersions,
  type FileEntry,
  type Visibility,
} from '../schema.ts';
import { aliasInExperiment, aliasMoveStatements, experimentOnAlias } from './aliases.ts';
import { getAdapter, type AdapterRow } from './adapters.ts';
import { releaseLeasesStatement } from './blobs.ts';
import { recordIdempotencyKeyStatement } from './idempotency.ts';

/** Everything a new adapter version consists of, validated and with its files already stored. */
export interface NewAdapterVersion {
  adapter: string;
  tenantId: string;
  keyId?: string | null;
  /** Adapter-level metadata: applied when the adapter is created, updated when given again. */
  visibility?: Visibility;
  task?: string;
  description?: string;
  /** The version's own chat template (parsed by the caller). */
  chatTemplate?: string;
  baseVersionId: string;
  baseParams: number;
  manifest: AdapterManifest;
  files: FileEntry[];
  /** The version's content digest (registry/digest.ts). */
  sha256: string;
  /** Its behavior digest: files, base and chat template (registry/digest.ts). */
  behaviorSha256: string;
  dataset?: string;
  trainingNotes?: string;
  license?: string;
  card?: string;
  metrics?: Record<string, unknown>;
  tags?: string[];
  /** Point this alias at the new version in the same write. */
  alias?: string;
  now: Date;
  /** The upload whose blob leases the commit drops (its file rows reference the blobs instead). */
  uploadId?: string;
  /** Remember the request's Idempotency-Key with the version, in the same write. */
  idempotency?: { key: string; fingerprint: string };
}

export interface CommittedVersion {
  id: string;
  version: number;
  adapter: AdapterRow;
  paramsPctOfBase: number;
  bytes: number;
}

/**
 * Makes a version visible: adapter (if new), version, files and alias move in ONE atomic write
 * (a D1 batch or a SQLite transaction), so a failure at any point leaves nothing behind. The
 * version number is computed inside the insert (max + 1), and (adapter, version) is unique.
 * `check` runs on the adapter row (existing or about to be created) before anything is written:
 * the caller's ownership check.
 */
export async function commitAdapterVersion(
  r: RegistryDb,
  v: NewAdapterVersion,
  check: (existing: AdapterRow | undefined) => void = () => {},
): Promise<CommittedVersion> {
  const bytes = v.files.reduce((n, f) => n + f.bytes, 0);
  const paramsPctOfBase = v.baseParams > 0 ? (v.manifest.params / v.baseParams) * 100 : 0;
  for (let attempt = 0; ; attempt++) {
    const existing = await getAdapter(r.db, v.adapter);
    check(existing);
    // Publishing onto an experiment's alias would move it under the running experiment (PUT with force does that).
    const experiment = existing && v.alias ? await experimentOnAlias(r.db, existing, v.alias) : undefined;
    if (experiment) throw aliasInExperiment(experiment, v.alias!);
    if (
      !existing &&
      (await r.db.select({ id: baseModels.id }).from(baseModels).where(eq(baseModels.name, v.adapter)).limit(1)).length
    ) {
      // `model` names either one: an adapter may not shadow a base model.
      throw conflict(`"${v.adapter}" is the name of a base model`, 'name_taken');
    }
    const adapterId = existing?.id ?? `ad_${crypto.randomUUID()}`;
    const versionId = `adv_${crypto.randomUUID()}`;
    const statements: Statement[] = [];
    const meta = { visibility: v.visibility, task: v.task, description: v.description };
    if (!existing) {
      statements.push(
        r.db.insert(adapters).values({
          id: adapterId,
          name: v.adapter,
          tenantId: v.tenantId,
          visibility: v.visibility ?? 'private',
          task: v.task ?? null,
          description: v.description ?? null,
          createdAt: v.now,
        }),
      );
    } else if (Object.values(meta).some((x) => x !== undefined)) {
      const set = Object.fromEntries(Object.entries(meta).filter(([, x]) => x !== undefined));
      statements.push(r.db.update(adapters).set(set).where(eq(adapters.id, adapterId)));
    }
    const sameAdapter = sql`${adapterVersions.adapterId} = ${adapterId}`;
    const maxVersion = sql`coalesce(max(${adapterVersions.version}), 0)`;
    const nextVersion = sql`(select ${maxVersion} + 1 from ${adapterVersions} where ${sameAdapter})`;
    statements.push(
      r.db.insert(adapterVersions).values({
        id: versionId,
        adapterId,
        version: nextVersion,
        baseVersionId: v.baseVersionId,
        kind: v.manifest.kind,
        bottleneck: v.manifest.bottleneck ?? null,
        rank: v.manifest.rank ?? null,
        targetModules: v.manifest.targetModules,
        taskTokens: v.manifest.taskTokens,
        params: v.manifest.params,
        paramsPctOfBase,
        bytes,
        sha256: v.sha256,
        behaviorSha256: v.behaviorSha256,
        weightsFile: v.manifest.weightsFile,
        dataset: v.dataset ?? null,
        trainingNotes: v.trainingNotes ?? null,
        license: v.license ?? null,
        card: v.card ?? null,
        metrics: v.metrics ?? null,
        tags: v.tags ?? [],
        createdAt: v.now,
        createdBy: v.keyId ?? null,
        chatTemplate: v.chatTemplate ?? null,
      }),
    );
    // D1 binds at most 100 parameters per statement: 4 per file row.
    for (let i = 0; i < v.files.length; i += 24) {
      statements.push(r.db.insert(adapterFiles).values(v.files.slice(i, i + 24).map((f) => ({ versionId, ...f }))));
    }
    if (v.alias) {
      const thisVersion = sql`${adapterVersions.id} = ${versionId}`;
      const newVersion = sql`(select ${adapterVersions.version} from ${adapterVersions} where ${thisVersion})`;
      statements.push(...aliasMoveStatements(r.db, adapterId, v.alias, newVersion, { keyId: v.keyId, now: v.now }));
    }
    if (v.uploadId) statements.push(releaseLeasesStatement(r.db, v.uploadId));
    if (v.idempotency)
      statements.push(
        recordIdempotencyKeyStatement(r.db, { tenantId: v.tenantId, versionId, now: v.now, ...v.idempotency }),
      );
    try {
      await r.atomic(statements);
    } catch (e) {
      // Another publisher created the adapter or took the number at the same moment: read, retry.
      if (attempt < 3 && isUniqueViolation(e)) continue;
      throw e;
    }
    const [row] = await r.db
      .select({ version: adapterVersions.version })
      .from(adapterVersions)
      .where(eq(adapterVersions.id, versionId));
    const adapter = existing ?? (await getAdapter(r.db, v.adapter))!;
    return { id: versionId, version: row.version, adapter, paramsPctOfBase, bytes };
  }
}

/** A committed version as its publish answered it (for an Idempotency-Key replay). */
export interface PublishedVersion {
  adapter: string;
  version: number;
  sha256: string;
  /** Null only for a version published before behavior digests, until the sweep fills it in. */
  behaviorSha256: string | null;
  bytes: number;
  params: number;
  paramsPctOfBase: number;
  /** MODEL@VERSION */
  base: string;
  kind: 'vlm' | 'lora';
  files: FileEntry[];
}

export async function getPublishedVersion(db: Db, versionId: string): Promise<PublishedVersion> {
  const [row] = await db
    .select({
      adapter: adapters.name,
      version: adapterVersions.version,
      sha256: adapterVersions.sha256,
      behaviorSha256: adapterVersions.behaviorSha256,
      bytes: adapterVersions.bytes,
      params: adapterVersions.params,
      paramsPctOfBase: adapterVersions.paramsPctOfBase,
      baseModel: baseModels.name,
      baseVersion: baseModelVersions.version,
      kind: adapterVersions.kind,
    })
    .from(adapterVersions)
    .innerJoin(adapters, eq(adapters.id, adapterVersions.adapterId))
    .innerJoin(baseModelVersions, eq(baseModelVersions.id, adapterVersions.baseVersionId))
    .innerJoin(baseModels, eq(baseModels.id, baseModelVersions.modelId))
    .where(eq(adapterVersions.id, versionId));
  const files = await db
    .select({ name: adapterFiles.name, sha256: adapterFiles.sha256, bytes: adapterFiles.bytes })
    .from(adapterFiles)
    .where(eq(adapterFiles.versionId, versionId))
    .orderBy(adapterFiles.name);
  const { baseModel, baseVersion, ...rest } = row;
  return { ...rest, base: `${baseModel}@${baseVersion}`, files };
}

/**
 * Fills in the behavior digest of versions published before it existed (SQL cannot hash, so no
 * migration could), from their stored files digest, base and chat template, a page at a time. The
 * sweep calls it; a trigger keeps a digest, once set, from changing. Returns how many it filled.
 */
export async function fillBehaviorDigests(db: Db, pageSize = 100): Promise<number> {
  let filled = 0;
  for (let after = ''; ;) {
    const rows = await db
      .select({
        id: adapterVersions.id,
        sha256: adapterVersions.sha256,
        baseSha256: baseModelVersions.sha256,
        chatTemplate: adapterVersions.chatTemplate,
      })
      .from(adapterVersions)
      .innerJoin(baseModelVersions, eq(baseModelVersions.id, adapterVersions.baseVersionId))
      .where(and(isNull(adapterVersions.behaviorSha256), gt(adapterVersions.id, after)))
      .orderBy(asc(adapterVersions.id))
      .limit(pageSize);
    for (const row of rows) {
      await db
        .update(adapterVersions)
        .set({ behaviorSha256: await behaviorDigest(row) })
        .where(and(eq(adapterVersions.id, row.id), isNull(adapterVersions.behaviorSha256)));
    }
    filled += rows.length;
    if (rows.length < pageSize) return filled;
    after = rows[rows.length - 1].id;
  }
}
