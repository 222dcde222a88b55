import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { type AppEnv } from '../http.ts';
import { principalOf } from '../../src/http/middleware.ts';
import { findVisibleAdapter, findWritableAdapter, viewerOf } from '../queries/adapters.ts';
import {
  createExperiment,
  findVisibleExperiment,
  listExperiments,
  updateExperiment,
  type Experiment,
} from '../queries/experiments.ts';
import { AliasName, ExperimentStatusSchema, iso, Name } from './schemas.ts';
import { conflictError, errors, json, jsonBody, scoped } from '../../src/http/openapi.ts';

const ArmInputSchema = z
  .object({
    name: z.string().min(1).max(64).optional(),
    version: z.number().int().positive().optional(),
    alias: AliasName.optional(),
    weight: z.number().min(0).max(1_000_000),
  })
  .strict()
  .refine((a) => (a.version === undefined) !== (a.alias === undefined), {
    message: 'give exactly one of "version" and "alias"',
  })
  .openapi('ArmInput');

const ExperimentSchema = z
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
      }),
    ),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .openapi('Experiment');

const present = (e: Experiment): z.infer<typeof ExperimentSchema> => ({
  id: e.id,
  object: 'experiment',
  name: e.name,
  adapter: e.adapter,
  status: e.status,
  killed: e.killed,
  arms: e.arms,
  created_at: iso(e.createdAt)!,
  updated_at: iso(e.updatedAt)!,
});

const IdParam = z.object({
  id: z
    .string()
    .regex(/^exp_[a-z0-9]{1,64}$/, 'must be an experiment id (exp_...)')
    .openapi({ param: { name: 'id', in: 'path' } }),
});

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
  summary: 'Change arms or weights, start/stop, or pull the kill switch (killed: serve as if there were no experiment)',
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

const list = createRoute({
  method: 'get',
  path: '/v1/experiments',
  tags: ['experiments'],
  summary: "An adapter's experiments, newest first",
  ...scoped('read'),
  request: { query: z.object({ adapter: Name }) },
  responses: {
    200: json(z.object({ object: z.literal('list'), data: z.array(ExperimentSchema) }), 'Experiments'),
    ...errors,
  },
});

export function experimentRoutes(): OpenAPIHono<AppEnv> {
  const app = new OpenAPIHono<AppEnv>();

  app.openapi(create, async (c) => {
    const p = principalOf(c);
    const { registry, now } = c.var.deps;
    const body = c.req.valid('json');
    const adapter = await findWritableAdapter(registry.db, body.adapter, viewerOf(p));
    const e = await createExperiment(registry, adapter, body, { keyId: p.keyId, now: now() });
    return c.json(present(e), 201);
  });

  app.openapi(patch, async (c) => {
    const p = principalOf(c);
    const { registry, now } = c.var.deps;
    const current = await findVisibleExperiment(registry.db, c.req.valid('param').id, viewerOf(p));
    const adapter = await findWritableAdapter(registry.db, current.adapter, viewerOf(p));
    return c.json(present(await updateExperiment(registry, current, adapter, c.req.valid('json'), now())), 200);
  });

  app.openapi(get, async (c) => {
    const p = principalOf(c);
    return c.json(
      present(await findVisibleExperiment(c.var.deps.registry.db, c.req.valid('param').id, viewerOf(p))),
      200,
    );
  });

  app.openapi(list, async (c) => {
    const p = principalOf(c);
    const db = c.var.deps.registry.db;
    const adapter = await findVisibleAdapter(db, c.req.valid('query').adapter, viewerOf(p));
    return c.json({ object: 'list' as const, data: (await listExperiments(db, adapter)).map(present) }, 200);
  });

  return app;
}
