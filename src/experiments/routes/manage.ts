import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { RegistryEnv } from '../../../registry/http.ts';
import { principalOf } from '../../http/middleware.ts';
import { canWrite, findVisibleAdapter, findWritableAdapter, viewerOf } from '../../../registry/queries/adapters.ts';
import { iso, Name } from '../../../registry/routes/schemas.ts';
import type { Guardrails } from '../../../registry/schema.ts';
import { conflictError, errors, json, jsonBody, scoped } from '../../http/openapi.ts';
import {
  createExperiment,
  experimentHistoryOf,
  findOwnExperiment,
  listExperiments,
  promoteArm,
  updateExperiment,
} from '../store.ts';
import {
  ArmInputSchema,
  ExperimentSchema,
  ExperimentStatusSchema,
  GuardrailsSchema,
  IdParam,
  metricsFromApi,
  MetricSchema,
  present,
} from './schemas.ts';

/** Managing experiments: create, change (ramp, start, stop, kill), promote, read, history, list. */

const create = createRoute({
  method: 'post',
  path: '/v1/experiments',
  tags: ['experiments'],
  summary: 'Create an A/B experiment over versions or aliases of one adapter (at most one running per adapter)',
  ...scoped('publish'),
  request: {
    body: jsonBody(
      z
        .object({
          name: z.string().min(1).max(200),
          adapter: Name,
          arms: z.array(ArmInputSchema).min(1).max(16),
          status: z.enum(['draft', 'running']).optional(),
          metrics: z.array(MetricSchema).min(1).max(8).optional(),
          guardrails: GuardrailsSchema.optional(),
          auto_promote: z.boolean().optional(),
        })
        .strict(),
    ),
  },
  responses: { 201: json(ExperimentSchema, 'Created'), ...errors, ...conflictError },
});

const patch = createRoute({
  method: 'patch',
  path: '/v1/experiments/{id}',
  tags: ['experiments'],
  summary:
    'Change arms or weights, start/stop, or pull the kill switch ' +
    '(killed: every unit is served the control arm and nothing is counted)',
  ...scoped('publish'),
  request: {
    params: IdParam,
    body: jsonBody(
      z
        .object({
          name: z.string().min(1).max(200).optional(),
          arms: z.array(ArmInputSchema).min(1).max(16).optional(),
          weights: z.array(z.number().min(0).max(1_000_000)).min(1).max(16).optional(),
          status: ExperimentStatusSchema.optional(),
          killed: z.boolean().optional(),
          metrics: z.array(MetricSchema).min(1).max(8).optional(),
          guardrails: GuardrailsSchema.optional(),
          auto_promote: z.boolean().optional(),
        })
        .strict(),
    ),
  },
  responses: { 200: json(ExperimentSchema, 'Updated'), ...errors, ...conflictError },
});

const get = createRoute({
  method: 'get',
  path: '/v1/experiments/{id}',
  tags: ['experiments'],
  summary: 'An experiment and its arms',
  ...scoped('read'),
  request: { params: IdParam },
  responses: { 200: json(ExperimentSchema, 'Experiment'), ...errors },
});

const promote = createRoute({
  method: 'post',
  path: '/v1/experiments/{id}/promote',
  tags: ['experiments'],
  summary:
    "Promote an arm: the adapter's production alias moves to the arm's version and the experiment stops " +
    '(alias history names the experiment)',
  ...scoped('publish'),
  request: { params: IdParam, body: jsonBody(z.object({ arm: z.string().min(1).max(64) }).strict()) },
  responses: {
    200: json(
      z.object({
        experiment: ExperimentSchema,
        alias: z.literal('production'),
        version: z.number().int(),
        previous_version: z.number().int().nullable(),
      }),
      'Promoted',
    ),
    ...errors,
    ...conflictError,
  },
});

const history = createRoute({
  method: 'get',
  path: '/v1/experiments/{id}/history',
  tags: ['experiments'],
  summary: 'What happened to an experiment: start (with resolved versions), ramps, kill, stop, guardrails, promotion',
  ...scoped('read'),
  request: { params: IdParam },
  responses: {
    200: json(
      z.object({
        object: z.literal('list'),
        data: z.array(
          z.object({ kind: z.string(), detail: z.object({}).passthrough(), at: z.string(), by: z.string().nullable() }),
        ),
      }),
      'History',
    ),
    ...errors,
  },
});

const list = createRoute({
  method: 'get',
  path: '/v1/experiments',
  tags: ['experiments'],
  summary: "An adapter's experiments, newest first (none to another tenant's keys: they are its tenant's)",
  ...scoped('read'),
  request: { query: z.object({ adapter: Name }) },
  responses: {
    200: json(z.object({ object: z.literal('list'), data: z.array(ExperimentSchema) }), 'Experiments'),
    ...errors,
  },
});

export function manageRoutes(): OpenAPIHono<RegistryEnv> {
  const app = new OpenAPIHono<RegistryEnv>();

  app.openapi(create, async (c) => {
    const p = principalOf(c);
    const { registry, now } = c.var.deps;
    const body = c.req.valid('json');
    const adapter = await findWritableAdapter(registry.db, body.adapter, viewerOf(p));
    const e = await createExperiment(
      registry,
      adapter,
      {
        ...body,
        metrics: metricsFromApi(body.metrics),
        guardrails: body.guardrails as Guardrails,
        autoPromote: body.auto_promote,
      },
      { keyId: p.keyId, now: now() },
    );
    return c.json(present(e), 201);
  });

  app.openapi(patch, async (c) => {
    const p = principalOf(c);
    const { registry, now } = c.var.deps;
    const current = await findOwnExperiment(registry.db, c.req.valid('param').id, viewerOf(p));
    const adapter = await findWritableAdapter(registry.db, current.adapter, viewerOf(p));
    const body = c.req.valid('json');
    const patch = { ...body, metrics: metricsFromApi(body.metrics), autoPromote: body.auto_promote };
    return c.json(
      present(await updateExperiment(registry, current, adapter, patch, { keyId: p.keyId, now: now() })),
      200,
    );
  });

  app.openapi(promote, async (c) => {
    const p = principalOf(c);
    const { registry, now } = c.var.deps;
    const current = await findOwnExperiment(registry.db, c.req.valid('param').id, viewerOf(p));
    const r = await promoteArm(registry, current, c.req.valid('json').arm, { keyId: p.keyId, now: now() });
    const after = await findOwnExperiment(registry.db, current.id, viewerOf(p));
    return c.json(
      {
        experiment: present(after),
        alias: 'production' as const,
        version: r.version,
        previous_version: r.previousVersion,
      },
      200,
    );
  });

  app.openapi(history, async (c) => {
    const p = principalOf(c);
    const db = c.var.deps.registry.db;
    const e = await findOwnExperiment(db, c.req.valid('param').id, viewerOf(p));
    const data = (await experimentHistoryOf(db, e.id)).map((h) => ({ ...h, at: iso(h.at)! }));
    return c.json({ object: 'list' as const, data }, 200);
  });

  app.openapi(get, async (c) => {
    const p = principalOf(c);
    return c.json(present(await findOwnExperiment(c.var.deps.registry.db, c.req.valid('param').id, viewerOf(p))), 200);
  });

  app.openapi(list, async (c) => {
    const p = principalOf(c);
    const db = c.var.deps.registry.db;
    const viewer = viewerOf(p);
    const adapter = await findVisibleAdapter(db, c.req.valid('query').adapter, viewer);
    // The experiments this key may see: none on another tenant's public adapter (they are its tenant's).
    const data = canWrite(viewer, adapter) ? (await listExperiments(db, adapter)).map(present) : [];
    return c.json({ object: 'list' as const, data }, 200);
  });

  return app;
}
