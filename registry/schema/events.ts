import { index, integer, sqliteTable, text } from 'drizzle-orm/sqlite-core';
import { createdAt } from './common.ts';

export const EVENT_TYPES = ['usage', 'exposure', 'feedback', 'metric'] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/** Usage, exposure and feedback events. Append-only: triggers (migrations/0001) refuse UPDATE and DELETE. */
export const events = sqliteTable(
  'events',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    type: text('type', { enum: EVENT_TYPES }).notNull(),
    createdAt: createdAt(),
    tenantId: text('tenant_id'),
    keyId: text('key_id'),
    adapter: text('adapter'),
    adapterVersion: integer('adapter_version'),
    base: text('base'),
    experimentId: text('experiment_id'),
    arm: text('arm'),
    unit: text('unit'),
    completionId: text('completion_id'),
    data: text('data', { mode: 'json' }).$type<Record<string, unknown>>(),
  },
  (t) => [
    index('events_type_time_idx').on(t.type, t.createdAt),
    index('events_experiment_idx').on(t.experimentId),
    index('events_completion_idx').on(t.completionId),
  ],
);
