import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import type { RegistryEnv } from '../../../registry/http.ts';
import { hasScope } from '../../http/principal.ts';
import { principalOf } from '../../http/middleware.ts';
import { ApiError, badRequest } from '../../http/errors.ts';
import { viewerOf } from '../../../registry/queries/adapters.ts';
import { appendEvents, findCompletion, type EventInput } from '../../../registry/queries/events.ts';
import { bearer, errors, json, jsonBody, rateLimitedError } from '../../http/openapi.ts';
import { feedbackStatements, metricEventStatements } from '../aggregates.ts';
import { evaluateExperiment } from '../evaluate.ts';
import type { EventLog } from '../event-log.ts';
import { checkMetricValue, declaredMetric } from '../lifecycle.ts';
import { findOwnExperiment, getExperiment } from '../store.ts';
import { eventsWritten } from '../write-batch.ts';
import { MAX_UNIT_CHARS } from '../units.ts';
import { FeedbackRequest, IdParam } from './schemas.ts';

/** What the outcome routes need of the edge: its event counters and the per-key limit on events. */
export interface OutcomeDeps {
  events: EventLog;
  /** Takes `count` events from the key's budget (eventRateLimitPerMinute), or throws 429 with Retry-After. */
  limitEvents(c: Context, keyId: string, count: number): void;
}

const feedbackRoute = createRoute({
  method: 'post',
  path: '/v1/feedback',
  tags: ['experiments'],
  summary: 'Score a completion (scope generate) on its experiment metric (default: the primary one); a repeat replaces',
  security: bearer,
  request: { body: jsonBody(FeedbackRequest) },
  responses: {
    201: json(
      z.object({
        completion_id: z.string(),
        score: z.number(),
        metric: z.string().nullable(),
        experiment: z.string().nullable(),
        arm: z.string().nullable(),
      }),
      'Recorded',
    ),
    ...errors,
    ...rateLimitedError,
  },
});

const metricsRoute = createRoute({
  method: 'post',
  path: '/v1/experiments/{id}/metrics',
  tags: ['experiments'],
  summary:
    "Outcomes the application measures itself (scope generate, the experiment's tenant): up to 1,000 " +
    '{unit, metric, value, ts?}; each counts for a unit exposed before its time, once per unit and metric ' +
    '(a repeat replaces the value; the latest ts of a call wins)',
  security: bearer,
  request: {
    params: IdParam,
    body: jsonBody(
      z
        .object({
          events: z
            .array(
              z
                .object({
                  unit: z.string().min(1).max(MAX_UNIT_CHARS),
                  metric: z.string().min(1).max(64),
                  value: z.number(),
                  ts: z.string().datetime({ offset: true }).optional(),
                })
                .strict(),
            )
            .min(1)
            .max(1000),
        })
        .strict(),
    ),
  },
  responses: { 202: json(z.object({ accepted: z.number().int() }), 'Written'), ...errors, ...rateLimitedError },
});

const resultsRoute = createRoute({
  method: 'get',
  path: '/v1/experiments/{id}/results',
  tags: ['experiments'],
  summary:
    'Per-arm unit-level results from incrementally kept aggregates: fixed-horizon intervals, always-valid ' +
    'confidence sequences and p-values against control, verdict, guardrails, promotable arm, SRM check',
  security: bearer,
  request: { params: IdParam },
  responses: { 200: json(z.object({}).passthrough(), 'Results'), ...errors },
});

const statsRoute = createRoute({
  method: 'get',
  path: '/v1/stats',
  tags: ['admin'],
  summary: "This edge instance's event writes: written and failed (scope admin)",
  security: bearer,
  responses: {
    200: json(z.object({ events: z.object({ written: z.number(), failed: z.number() }) }), 'Stats'),
    ...errors,
  },
});

/** Feedback, application metrics, results and the edge's event counters. */
export function outcomeRoutes(deps: OutcomeDeps): OpenAPIHono<RegistryEnv> {
  const app = new OpenAPIHono<RegistryEnv>();

  app.openapi(feedbackRoute, async (c) => {
    const principal = principalOf(c, 'generate');
    deps.limitEvents(c, principal.keyId, 1);
    const { completion_id, score, metric: metricName } = c.req.valid('json');
    const { registry, now } = c.var.deps;
    await eventsWritten(registry); // a completion this edge has just answered is in the registry
    const usage = await findCompletion(registry.db, completion_id, principal.tenantId);
    if (!usage)
      throw new ApiError(404, `completion "${completion_id}" not found`, 'completion_not_found', 'completion_id');
    // Only who asked for the completion (or an admin of its tenant: findCompletion is per tenant) rates it.
    if (usage.keyId !== principal.keyId && !hasScope(principal, 'admin'))
      throw new ApiError(403, 'only the key that made a completion (or an admin) may rate it', 'not_your_completion');
    const experiment = usage.experimentId ? await getExperiment(registry.db, usage.experimentId) : undefined;
    const metric = experiment ? declaredMetric(experiment, metricName, 'metric') : undefined;
    if (metric) checkMetricValue(metric, score, 'score');
    const arm = experiment?.arms.findIndex((a) => a.name === usage.arm) ?? -1;
    const event: EventInput = {
      type: 'feedback',
      tenantId: principal.tenantId,
      keyId: principal.keyId,
      adapter: usage.adapter,
      adapterVersion: usage.adapterVersion,
      base: usage.base,
      experimentId: usage.experimentId,
      arm: usage.arm,
      unit: usage.unit,
      completionId: completion_id,
      data: { score, ...(metric ? { metric: metric.name } : {}) },
    };
    // Counted only if the completion itself was (served to the experiment's own tenant while it ran, in
    // the unit's arm).
    const counted =
      experiment &&
      experiment.tenantId === principal.tenantId &&
      metric &&
      arm >= 0 &&
      usage.unit &&
      usage.data?.counted === true;
    const aggregates = counted
      ? feedbackStatements(registry.db, {
          experimentId: experiment.id,
          unit: usage.unit!,
          arm,
          completionId: completion_id,
          metric: metric.name,
          value: score,
        })
      : [];
    await appendEvents(registry, [event], now(), aggregates);
    return c.json(
      { completion_id, score, metric: metric?.name ?? null, experiment: usage.experimentId, arm: usage.arm },
      201,
    );
  });

  app.openapi(metricsRoute, async (c) => {
    const principal = principalOf(c, 'generate');
    const { events } = c.req.valid('json');
    deps.limitEvents(c, principal.keyId, events.length);
    const { registry, now } = c.var.deps;
    const experiment = await findOwnExperiment(registry.db, c.req.valid('param').id, viewerOf(principal));
    const at = now();
    const input = events.map((ev, i) => {
      const metric = declaredMetric(experiment, ev.metric, `events.${i}.metric`);
      checkMetricValue(metric, ev.value, `events.${i}.value`);
      const ts = ev.ts ? new Date(ev.ts) : at;
      if (ts.getTime() > at.getTime() + 60_000)
        throw badRequest(`events.${i}.ts is in the future`, 'invalid_timestamp', `events.${i}.ts`);
      return { ...ev, ts };
    });
    await appendEvents(
      registry,
      input.map((ev) => ({
        type: 'metric' as const,
        at: ev.ts,
        tenantId: principal.tenantId,
        keyId: principal.keyId,
        adapter: experiment.adapter,
        experimentId: experiment.id,
        unit: ev.unit,
        data: { metric: ev.metric, value: ev.value },
      })),
      at,
      metricEventStatements(
        registry.db,
        experiment.id,
        input.map((ev) => ({ unit: ev.unit, metric: ev.metric, value: ev.value, at: ev.ts })),
      ),
    );
    return c.json({ accepted: input.length }, 202);
  });

  app.openapi(resultsRoute, async (c) => {
    const principal = principalOf(c, 'read');
    const { registry, now } = c.var.deps;
    const experiment = await findOwnExperiment(registry.db, c.req.valid('param').id, viewerOf(principal));
    return c.json(await evaluateExperiment(registry, experiment, now()), 200);
  });

  app.openapi(statsRoute, (c) => {
    principalOf(c, 'operator');
    return c.json({ events: deps.events.stats() }, 200);
  });

  return app;
}
