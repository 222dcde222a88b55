import { eq, sql } from 'drizzle-orm';
import type { AdapterManifest } from '../../src/engine/adapters/format.ts';
import { isUniqueViolation, type RegistryDb, type Statement } from '../db/index.ts';
import { conflict } from '../../src/http/errors.ts';
import { adapterFiles, adapters, adapterVersions, baseModels, type FileEntry, type Visibility } from '../schema.ts';
import { aliasMoveStatements } from './aliases.ts';
import { getAdapter, type AdapterRow } from './adapters.ts';

/** Everything a new adapter version consists of, validated and with its files already stored. */
export interface NewAdapterVersion {
  adapter: string;
  tenantId: string;
  keyId?: string | null;
  /** Adapter-level metadata: applied when the adapter is created, updated when given again. */
  visibility?: Visibility;
  task?: string;
  description?: string;
  chatTemplate?: string;
  baseVersionId: string;
  baseParams: number;
  manifest: AdapterManifest;
  files: FileEntry[];
  /** The version's content digest (registry/digest.ts). */
  sha256: string;
  dataset?: string;
  trainingNotes?: string;
  license?: string;
  card?: string;
  metrics?: Record<string, unknown>;
  tags?: string[];
  /** Point this alias at the new version in the same write. */
  alias?: string;
  now: Date;
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
    const meta = { visibility: v.visibility, task: v.task, description: v.description, chatTemplate: v.chatTemplate };
    if (!existing) {
      statements.push(
        r.db.insert(adapters).values({
          id: adapterId,
          name: v.adapter,
          tenantId: v.tenantId,
          visibility: v.visibility ?? 'private',
          task: v.task ?? null,
          description: v.description ?? null,
          chatTemplate: v.chatTemplate ?? null,
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
        weightsFile: v.manifest.weightsFile,
        dataset: v.dataset ?? null,
        trainingNotes: v.trainingNotes ?? null,
        license: v.license ?? null,
        card: v.card ?? null,
        metrics: v.metrics ?? null,
        tags: v.tags ?? [],
        createdAt: v.now,
        createdBy: v.keyId ?? null,
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
