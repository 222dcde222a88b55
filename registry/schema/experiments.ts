import { sql } from 'drizzle-orm';
import { check, index, integer, primaryKey, real, sqliteTable, text, uniqueIndex } from 'drizzle-orm/sqlite-core';
import { adapters } from './adapters.ts';
import { createdAt } from './common.ts';
import { apiKeys } from './tenants.ts';

/** Experiments: their arms, history and weight periods, and the aggregates results read (src/experiments). */

export const EXPERIMENT_STATUSES = ['draft', 'running', 'stopped'] as const;
export type ExperimentStatus = (typeof EXPERIMENT_STATUSES)[number];

export const experiments = sqliteTable(
  'experiments',
  {
    id: text('id').primaryKey(),
    name: text('name').notNull(),
    adapterId: text('adapter_id')
      .notNull()
      .references(() => adapters.id),
    status: text('status', { enum: EXPERIMENT_STATUSES }).notNull().default('draft'),
    /** Kill switch: serve the adapter as if there were no experiment, whatever the status. */
    killed: integer('killed', { mode: 'boolean' }).notNull().default(false),
    /** Declared outcome metrics (the first is the primary one); null: one unbounded-ish `score`. */
    metrics: text('metrics', { mode: 'json' }).$type<ExperimentMetric[]>(),
    guardrails: text('guardrails', { mode: 'json' }).$type<Guardrails>(),
    autoPromote: integer('auto_promote', { mode: 'boolean' }).notNull().default(false),
    /** Bumped on every weight change while running: units first seen in a period follow its weights (SRM). */
    period: integer('period').notNull().default(0),
    startedAt: integer('started_at', { mode: 'timestamp_ms' }),
    stoppedAt: integer('stopped_at', { mode: 'timestamp_ms' }),
    stopReason: text('stop_reason'),
    createdAt: createdAt(),
    updatedAt: integer('updated_at', { mode: 'timestamp_ms' }).notNull(),
    createdBy: text('created_by').references(() => apiKeys.id),
  },
  (t) => [
    index('experiments_adapter_idx').on(t.adapterId),
    // At most one running experiment per adapter: `ADAPTER` alone resolves through it.
    uniqueIndex('experiments_one_running_idx')
      .on(t.adapterId)
      .where(sql`status = 'running'`),
  ],
);

export const experimentArms = sqliteTable(
  'experiment_arms',
  {
    experimentId: text('experiment_id')
      .notNull()
      .references(() => experiments.id),
    position: integer('position').notNull(),
    name: text('name').notNull(),
    version: integer('version'),
    alias: text('alias'),
    weight: real('weight').notNull(),
    /** The version an arm serves, fixed when the experiment starts (an alias arm's target then). */
    resolvedVersion: integer('resolved_version'),
  },
  (t) => [
    primaryKey({ columns: [t.experimentId, t.position] }),
    check('experiment_arms_target', sql`(${t.version} IS NULL) <> (${t.alias} IS NULL)`),
    check('experiment_arms_weight', sql`${t.weight} >= 0`),
  ],
);

/** An experiment's declared outcome metric: binary (0/1), scale or continuous within [min, max]. */
export interface ExperimentMetric {
  name: string;
  kind: 'binary' | 'scale' | 'continuous';
  min: number;
  max: number;
}

/** Tolerated regressions: error rate in absolute points, p95 latency and tokens per request relative. */
export interface Guardrails {
  error_rate?: number;
  p95_latency?: number;
  tokens_per_request?: number;
}

/** What happened to an experiment: start, weights, kill, stop, guardrail, promotion, forced alias moves. */
export const experimentHistory = sqliteTable(
  'experiment_history',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    experimentId: text('experiment_id')
      .notNull()
      .references(() => experiments.id),
    kind: text('kind').notNull(),
    detail: text('detail', { mode: 'json' }).$type<Record<string, unknown>>().notNull(),
    at: integer('at', { mode: 'timestamp_ms' }).notNull(),
    by: text('by_key').references(() => apiKeys.id),
  },
  (t) => [index('experiment_history_experiment_idx').on(t.experimentId, t.id)],
);

/** The weights in force from one period on (SRM expects each period's new units to follow them). */
export const experimentPeriods = sqliteTable(
  'experiment_periods',
  {
    experimentId: text('experiment_id')
      .notNull()
      .references(() => experiments.id),
    period: integer('period').notNull(),
    weights: text('weights', { mode: 'json' }).$type<number[]>().notNull(),
    startedAt: integer('started_at', { mode: 'timestamp_ms' }).notNull(),
  },
  (t) => [primaryKey({ columns: [t.experimentId, t.period] })],
);

/**
 * One row per randomization unit of an experiment, updated with each counted event: the arm it was
 * first served by (it counts there only), when, and its running usage totals.
 */
export const experimentUnits = sqliteTable(
  'experiment_units',
  {
    experimentId: text('experiment_id').notNull(),
    unit: text('unit').notNull(),
    arm: integer('arm').notNull(),
    firstAt: integer('first_at', { mode: 'timestamp_ms' }).notNull(),
    requests: integer('requests').notNull(),
    errors: integer('errors').notNull(),
    ok: integer('ok').notNull(),
    tokens: integer('tokens').notNull(),
    latencyMs: real('latency_ms').notNull(),
    ttftMs: real('ttft_ms').notNull(),
  },
  (t) => [primaryKey({ columns: [t.experimentId, t.unit] })],
);

/**
 * A unit's running sum and count of one outcome metric: its completions' feedback scores, plus the
 * value the application last reported for it (`outcome`: one per unit, a repeat replaces it).
 */
export const experimentUnitMetrics = sqliteTable(
  'experiment_unit_metrics',
  {
    experimentId: text('experiment_id').notNull(),
    unit: text('unit').notNull(),
    metric: text('metric').notNull(),
    sum: real('sum').notNull(),
    count: integer('count').notNull(),
    outcome: real('outcome'),
  },
  (t) => [primaryKey({ columns: [t.experimentId, t.unit, t.metric] })],
);

/** The score a completion holds per metric (a repeat replaces it: the aggregates take the difference). */
export const experimentFeedback = sqliteTable(
  'experiment_feedback',
  {
    completionId: text('completion_id').notNull(),
    metric: text('metric').notNull(),
    value: real('value').notNull(),
  },
  (t) => [primaryKey({ columns: [t.completionId, t.metric] })],
);

/**
 * Per arm and statistic, sums over units of x_u, x_u^2, y_u, y_u^2, x_u*y_u (x: a unit's count of
 * requests or scores, y: its total): the sufficient statistics of unit-level (delta-method) analysis.
 */
export const experimentMoments = sqliteTable(
  'experiment_moments',
  {
    experimentId: text('experiment_id').notNull(),
    arm: integer('arm').notNull(),
    stat: text('stat').notNull(),
    sx: real('sx').notNull(),
    sxx: real('sxx').notNull(),
    sy: real('sy').notNull(),
    syy: real('syy').notNull(),
    sxy: real('sxy').notNull(),
  },
  (t) => [primaryKey({ columns: [t.experimentId, t.arm, t.stat] })],
);

/** Request counts per arm in fixed log-spaced latency buckets (p50/p95 and the p95 guardrail). */
export const experimentHistogram = sqliteTable(
  'experiment_histogram',
  {
    experimentId: text('experiment_id').notNull(),
    arm: integer('arm').notNull(),
    kind: text('kind', { enum: ['latency', 'ttft'] }).notNull(),
    bucket: integer('bucket').notNull(),
    count: integer('count').notNull(),
  },
  (t) => [primaryKey({ columns: [t.experimentId, t.arm, t.kind, t.bucket] })],
);
