import { sql } from 'drizzle-orm';
import { check, index, integer, primaryKey, real, sqliteTable, text, uniqueIndex } from 'drizzle-orm/sqlite-core';
import { createdAt, VERSION_STATUSES } from './common.ts';
import { baseModelVersions } from './models.ts';
import { apiKeys, tenants } from './tenants.ts';

/** Adapters, their versions and files, and aliases with their history. */

export const VISIBILITIES = ['private', 'public'] as const;
export type Visibility = (typeof VISIBILITIES)[number];
export const ADAPTER_KINDS = ['vlm', 'lora'] as const;

export const adapters = sqliteTable(
  'adapters',
  {
    id: text('id').primaryKey(),
    name: text('name').notNull().unique(),
    tenantId: text('tenant_id')
      .notNull()
      .references(() => tenants.id),
    visibility: text('visibility', { enum: VISIBILITIES }).notNull().default('private'),
    task: text('task'),
    description: text('description'),
    /** Jinja chat template for /v1/chat/completions (null: task tokens, then the messages' text). */
    chatTemplate: text('chat_template'),
    createdAt: createdAt(),
  },
  (t) => [index('adapters_tenant_idx').on(t.tenantId), index('adapters_task_idx').on(t.task)],
);

export const adapterVersions = sqliteTable(
  'adapter_versions',
  {
    id: text('id').primaryKey(),
    adapterId: text('adapter_id')
      .notNull()
      .references(() => adapters.id),
    version: integer('version').notNull(),
    baseVersionId: text('base_version_id')
      .notNull()
      .references(() => baseModelVersions.id),
    kind: text('kind', { enum: ADAPTER_KINDS }).notNull(),
    bottleneck: integer('bottleneck'),
    rank: integer('rank'),
    targetModules: text('target_modules', { mode: 'json' }).$type<string[]>().notNull(),
    taskTokens: text('task_tokens', { mode: 'json' }).$type<string[]>().notNull(),
    params: integer('params').notNull(),
    paramsPctOfBase: real('params_pct_of_base').notNull(),
    /** Total bytes of all files. */
    bytes: integer('bytes').notNull(),
    /** Digest of the file list (see registry/digest.ts): identifies the version's whole content. */
    sha256: text('sha256').notNull(),
    /**
     * Digest of what the version does: its files, its base and its own chat template (registry/digest.ts).
     * Null on versions published before it existed, until the sweep fills it in (SQL has no sha256).
     */
    behaviorSha256: text('behavior_sha256'),
    weightsFile: text('weights_file').notNull(),
    dataset: text('dataset'),
    trainingNotes: text('training_notes'),
    license: text('license'),
    card: text('card'),
    metrics: text('metrics', { mode: 'json' }).$type<Record<string, unknown>>(),
    tags: text('tags', { mode: 'json' }).$type<string[]>().notNull(),
    status: text('status', { enum: VERSION_STATUSES }).notNull().default('active'),
    createdAt: createdAt(),
    createdBy: text('created_by').references(() => apiKeys.id),
    /** Jinja chat template of this version (parsed when saved); null: the adapter's legacy one, then the base's. */
    chatTemplate: text('chat_template'),
  },
  (t) => [
    uniqueIndex('adapter_versions_adapter_version_idx').on(t.adapterId, t.version),
    index('adapter_versions_base_idx').on(t.baseVersionId),
    check('adapter_versions_version_positive', sql`${t.version} > 0`),
  ],
);

export const adapterFiles = sqliteTable(
  'adapter_files',
  {
    versionId: text('version_id')
      .notNull()
      .references(() => adapterVersions.id),
    name: text('name').notNull(),
    sha256: text('sha256').notNull(),
    bytes: integer('bytes').notNull(),
  },
  (t) => [primaryKey({ columns: [t.versionId, t.name] }), index('adapter_files_sha256_idx').on(t.sha256)],
);

export const aliases = sqliteTable(
  'aliases',
  {
    adapterId: text('adapter_id')
      .notNull()
      .references(() => adapters.id),
    name: text('name').notNull(),
    version: integer('version').notNull(),
    updatedAt: integer('updated_at', { mode: 'timestamp_ms' }).notNull(),
    updatedBy: text('updated_by').references(() => apiKeys.id),
  },
  (t) => [primaryKey({ columns: [t.adapterId, t.name] })],
);

export const aliasHistory = sqliteTable(
  'alias_history',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    adapterId: text('adapter_id')
      .notNull()
      .references(() => adapters.id),
    alias: text('alias').notNull(),
    fromVersion: integer('from_version'),
    toVersion: integer('to_version').notNull(),
    reason: text('reason'),
    movedAt: integer('moved_at', { mode: 'timestamp_ms' }).notNull(),
    movedBy: text('moved_by').references(() => apiKeys.id),
  },
  (t) => [index('alias_history_alias_idx').on(t.adapterId, t.alias, t.id)],
);
