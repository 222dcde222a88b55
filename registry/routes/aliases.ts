import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { notFound } from '../../src/http/errors.ts';
import { type RegistryEnv } from '../http.ts';
import { principalOf, setWarning } from '../../src/http/middleware.ts';
import { findVisibleAdapter, findWritableAdapter, viewerOf } from '../queries/adapters.ts';
import {
  aliasHistoryPage,
  getAlias,
  listAliases,
  rollbackAlias,
  setAlias,
  type AliasRow,
  type SetAliasResult,
} from '../queries/aliases.ts';
import { AdapterParam, AliasParam, iso, ListMeta, page, PageQuery } from './schemas.ts';
import { conflictError, errors, json, jsonBody, scoped } from '../../src/http/openapi.ts';

const AliasSchema = z
  .object({
    adapter: z.string(),
    alias: z.string(),
    version: z.number().int(),
    updated_at: z.string(),
    updated_by: z.string().nullable(),
  })
  .openapi('Alias');

const AliasMoveResultSchema = z
  .object({
    adapter: z.string(),
    alias: z.string(),
    version: z.number().int(),
    previous_version: z.number().int().nullable(),
    changed: z.boolean(),
  })
  .openapi('AliasMoveResult');

const AliasMoveSchema = z
  .object({
    alias: z.string(),
    from_version: z.number().int().nullable(),
    to_version: z.number().int(),
    kind: z.enum(['set', 'move', 'rollback']),
    reason: z.string().nullable(),
    moved_at: z.string(),
    moved_by: z.object({ key_id: z.string(), key_name: z.string(), tenant: z.string() }).nullable(),
  })
  .openapi('AliasMove');

const presentAlias = (adapter: string, a: AliasRow): z.infer<typeof AliasSchema> => ({
  adapter,
  alias: a.name,
  version: a.version,
  updated_at: iso(a.updatedAt)!,
  updated_by: a.updatedBy,
});

const presentMove = (adapter: string, r: SetAliasResult): z.infer<typeof AliasMoveResultSchema> => ({
  adapter,
  alias: r.alias,
  version: r.version,
  previous_version: r.previousVersion,
  changed: r.changed,
});

const list = createRoute({
  method: 'get',
  path: '/v1/adapters/{adapter}/aliases',
  tags: ['aliases'],
  summary: "An adapter's aliases",
  ...scoped('read'),
  request: { params: AdapterParam },
  responses: { 200: json(z.object({ object: z.literal('list'), data: z.array(AliasSchema) }), 'Aliases'), ...errors },
});

const get = createRoute({
  method: 'get',
  path: '/v1/adapters/{adapter}/aliases/{alias}',
  tags: ['aliases'],
  summary: 'Where an alias points',
  ...scoped('read'),
  request: { params: AdapterParam.merge(AliasParam) },
  responses: { 200: json(AliasSchema, 'Alias'), ...errors },
});

const put = createRoute({
  method: 'put',
  path: '/v1/adapters/{adapter}/aliases/{alias}',
  tags: ['aliases'],
  summary: 'Set or move an alias (to an earlier version: a rollback); every move is kept in its history',
  ...scoped('publish'),
  request: {
    params: AdapterParam.merge(AliasParam),
    body: jsonBody(
      z
        .object({
          version: z.number().int().positive(),
          reason: z.string().max(1000).optional(),
          /** Move an alias that is an arm of a running experiment (recorded in the experiment's history). */
          force: z.boolean().optional(),
        })
        .strict(),
    ),
  },
  responses: {
    200: json(AliasMoveResultSchema, 'Moved (or already there: changed=false)'),
    ...errors,
    ...conflictError,
  },
});

const rollback = createRoute({
  method: 'post',
  path: '/v1/adapters/{adapter}/aliases/{alias}/rollback',
  tags: ['aliases'],
  summary: 'Roll back in one call: move the alias back to where it pointed before its latest move',
  ...scoped('publish'),
  request: {
    params: AdapterParam.merge(AliasParam),
    body: {
      required: false,
      content: {
        'application/json': {
          schema: z.object({ reason: z.string().max(1000).optional(), force: z.boolean().optional() }).strict(),
        },
      },
    },
  },
  responses: { 200: json(AliasMoveResultSchema, 'Rolled back'), ...errors, ...conflictError },
});

const history = createRoute({
  method: 'get',
  path: '/v1/adapters/{adapter}/aliases/{alias}/history',
  tags: ['aliases'],
  summary: "An alias's moves, newest first: who moved it, when, from which version to which",
  ...scoped('read'),
  request: { params: AdapterParam.merge(AliasParam), query: PageQuery },
  responses: {
    200: json(z.object({ ...ListMeta, data: z.array(AliasMoveSchema) }).openapi('AliasHistory'), 'History'),
    ...errors,
  },
});

export function aliasRoutes(): OpenAPIHono<RegistryEnv> {
  const app = new OpenAPIHono<RegistryEnv>();

  app.openapi(list, async (c) => {
    const p = principalOf(c);
    const db = c.var.deps.registry.db;
    const adapter = await findVisibleAdapter(db, c.req.valid('param').adapter, viewerOf(p));
    return c.json(
      { object: 'list' as const, data: (await listAliases(db, adapter)).map((a) => presentAlias(adapter.name, a)) },
      200,
    );
  });

  app.openapi(get, async (c) => {
    const p = principalOf(c);
    const db = c.var.deps.registry.db;
    const params = c.req.valid('param');
    const adapter = await findVisibleAdapter(db, params.adapter, viewerOf(p));
    const alias = await getAlias(db, adapter, params.alias);
    if (!alias) throw notFound(`adapter "${adapter.name}" has no alias "${params.alias}"`, 'alias_not_found');
    return c.json(presentAlias(adapter.name, alias), 200);
  });

  app.openapi(put, async (c) => {
    const p = principalOf(c);
    const { registry, now } = c.var.deps;
    const params = c.req.valid('param');
    const body = c.req.valid('json');
    const adapter = await findWritableAdapter(registry.db, params.adapter, viewerOf(p));
    const r = await setAlias(registry, adapter, params.alias, body.version, {
      keyId: p.keyId,
      reason: body.reason,
      force: body.force,
      now: now(),
    });
    if (r.warning) setWarning(c, r.warning);
    return c.json(presentMove(adapter.name, r), 200);
  });

  app.openapi(rollback, async (c) => {
    const p = principalOf(c);
    const { registry, now } = c.var.deps;
    const params = c.req.valid('param');
    const body = c.req.valid('json') as { reason?: string; force?: boolean };
    const adapter = await findWritableAdapter(registry.db, params.adapter, viewerOf(p));
    const r = await rollbackAlias(registry, adapter, params.alias, {
      keyId: p.keyId,
      reason: body.reason,
      force: body.force,
      now: now(),
    });
    if (r.warning) setWarning(c, r.warning);
    return c.json(presentMove(adapter.name, r), 200);
  });

  app.openapi(history, async (c) => {
    const p = principalOf(c);
    const db = c.var.deps.registry.db;
    const params = c.req.valid('param');
    const adapter = await findVisibleAdapter(db, params.adapter, viewerOf(p));
    const result = await aliasHistoryPage(db, adapter, params.alias, c.req.valid('query'));
    const data = result.data.map((m) => ({
      alias: m.alias,
      from_version: m.fromVersion,
      to_version: m.toVersion,
      kind: m.kind,
      reason: m.reason,
      moved_at: iso(m.movedAt)!,
      moved_by: m.movedBy ? { key_id: m.movedBy.keyId, key_name: m.movedBy.keyName, tenant: m.movedBy.tenantId } : null,
    }));
    return c.json(page(data, result.nextCursor), 200);
  });

  return app;
}
