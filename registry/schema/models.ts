import { sql } from 'drizzle-orm';
import { check, integer, primaryKey, sqliteTable, text, uniqueIndex } from 'drizzle-orm/sqlite-core';
import type { ModelConfig } from '../../src/engine/model/config.ts';
import { createdAt, VERSION_STATUSES } from './common.ts';
import { apiKeys, tenants } from './tenants.ts';

/** Base models, their versions and files. */

/** How a tokenizer was registered with a base model version. */
export interface TokenizerInfo {
  kind: 'hf' | 'llama2c';
  /** File name (inside the version's files when it ships with the model). */
  file: string;
  sha256: string;
  bytes: number;
  /** The Jinja chat template the tokenizer ships (tokenizer_config.json), if any. */
  chat_template?: string;
}

export const baseModels = sqliteTable('base_models', {
  id: text('id').primaryKey(),
  name: text('name').notNull().unique(),
  tenantId: text('tenant_id')
    .notNull()
    .references(() => tenants.id),
  description: text('description'),
  createdAt: createdAt(),
});

export const baseModelVersions = sqliteTable(
  'base_model_versions',
  {
    id: text('id').primaryKey(),
    modelId: text('model_id')
      .notNull()
      .references(() => baseModels.id),
    version: integer('version').notNull(),
    architecture: text('architecture').notNull(),
    config: text('config', { mode: 'json' }).$type<ModelConfig>().notNull(),
    tokenizer: text('tokenizer', { mode: 'json' }).$type<TokenizerInfo>(),
    params: integer('params').notNull(),
    bytes: integer('bytes').notNull(),
    /** Digest of the file list (see registry/digest.ts). */
    sha256: text('sha256').notNull(),
    status: text('status', { enum: VERSION_STATUSES }).notNull().default('active'),
    notes: text('notes'),
    createdAt: createdAt(),
    createdBy: text('created_by').references(() => apiKeys.id),
  },
  (t) => [
    uniqueIndex('base_model_versions_model_version_idx').on(t.modelId, t.version),
    check('base_model_versions_version_positive', sql`${t.version} > 0`),
  ],
);

export const baseModelFiles = sqliteTable(
  'base_model_files',
  {
    versionId: text('version_id')
      .notNull()
      .references(() => baseModelVersions.id),
    name: text('name').notNull(),
    sha256: text('sha256').notNull(),
    bytes: integer('bytes').notNull(),
  },
  (t) => [primaryKey({ columns: [t.versionId, t.name] })],
);
