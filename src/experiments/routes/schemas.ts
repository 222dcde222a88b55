import { z } from '@hono/zod-openapi';
import { AliasName, iso } from '../../../registry/routes/schemas.ts';
import { EXPERIMENT_STATUSES, type ExperimentMetric } from '../../../registry/schema.ts';
import { ONE_TARGET, namesOneTarget, type Experiment } from '../lifecycle.ts';

/** The experiment API's request and response shapes (also its OpenAPI components). */

export const ExperimentStatusSchema = z.enum(EXPERIMENT_STATUSES);

export const ArmInputSchema = z
  .object({
    name: z.string().min(1).max(64).optional(),
    version: z.number().int().positive().optional(),
    alias: AliasName.optional(),
    weight: z.number().min(0).max(1_000_000),
  })
  .strict()
  .refine(namesOneTarget, { message: ONE_TARGET })
  .openapi('ArmInput');

export const MetricSchema = z
  .discriminatedUnion('kind', [
    z.object({ name: z.string().regex(/^[a-z0-9_.-]{1,64}$/i), kind: z.literal('binary') }).strict(),
    z
      .object({
        name: z.string().regex(/^[a-z0-9_.-]{1,64}$/i),
        kind: z.enum(['scale', 'continuous']),
        min: z.number().min(-1e6).max(1e6),
        max: z.number().min(-1e6).max(1e6),
      })
      .strict(),
  ])
  .openapi('ExperimentMetric', {
    description: 'binary (0/1), scale (whole numbers in [min, max], e.g. 1-5) or continuous in [min, max]',
  });

export const GuardrailsSchema = z
  .object({
    error_rate: z.number().min(0).max(1).optional(),
    p95_latency: z.number().min(0).max(100).optional(),
    tokens_per_request: z.number().min(0).max(100).optional(),
  })
  .strict()
  .openapi('Guardrails', {
    description:
      'Tolerated regressions against control: error_rate in absolute points (0.01 = 1 point), p95_latency and ' +
      'tokens_per_request relative (0.2 = 20 %). When the sequential test shows an arm worse beyond one, the ' +
      'kill switch goes on (every unit is served control) and the reason is recorded.',
  });

/** Metrics as the store keeps them: a binary one is within [0, 1]. */
export const metricsFromApi = (metrics: z.infer<typeof MetricSchema>[] | undefined): ExperimentMetric[] | undefined =>
  metrics?.map((m) => (m.kind === 'binary' ? { ...m, min: 0, max: 1 } : m));

export const ExperimentSchema = z
  .object({
    id: z.string(),
    object: z.literal('experiment'),
    name: z.string(),
    adapter: z.string(),
    status: ExperimentStatusSchema,
    killed: z.boolean(),
    arms: z.array(
      z.object({
        name: z.string(),
        version: z.number().int().nullable(),
        alias: z.string().nullable(),
        weight: z.number(),
        resolved_version: z.number().int().nullable(),
      }),
    ),
    metrics: z.array(z.object({ name: z.string(), kind: z.string(), min: z.number(), max: z.number() })),
    guardrails: z.object({}).passthrough(),
    auto_promote: z.boolean(),
    started_at: z.string().nullable(),
    stopped_at: z.string().nullable(),
    stop_reason: z.string().nullable(),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .openapi('Experiment');

export const present = (e: Experiment): z.infer<typeof ExperimentSchema> => ({
  id: e.id,
  object: 'experiment',
  name: e.name,
  adapter: e.adapter,
  status: e.status,
  killed: e.killed,
  arms: e.arms.map(({ resolvedVersion, ...a }) => ({ ...a, resolved_version: resolvedVersion })),
  metrics: e.metrics,
  guardrails: e.guardrails as Record<string, number>,
  auto_promote: e.autoPromote,
  started_at: iso(e.startedAt),
  stopped_at: iso(e.stoppedAt),
  stop_reason: e.stopReason,
  created_at: iso(e.createdAt)!,
  updated_at: iso(e.updatedAt)!,
});

export const IdParam = z.object({
  id: z
    .string()
    .regex(/^exp_[a-z0-9]{1,64}$/, 'must be an experiment id (exp_...)')
    .openapi({ param: { name: 'id', in: 'path' } }),
});

/** A score is finite and within +-1e6 (summable); an experiment's declared metric bounds it further. */
const MAX_ABS_SCORE = 1e6;
export const FeedbackRequest = z
  .object({
    completion_id: z.string().min(1).max(100),
    score: z.number().min(-MAX_ABS_SCORE).max(MAX_ABS_SCORE),
    /** Which of the experiment's declared metrics (default: its primary one). */
    metric: z.string().min(1).max(64).optional(),
  })
  .strict();
