import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { createApiKey } from '../auth.ts';
import { notFound } from '../../src/http/errors.ts';
import { type AppEnv } from '../http.ts';
import { principalOf } from '../../src/http/middleware.ts';
import { createTenant, getTenant, listApiKeys, listTenants, revokeApiKey, type KeyInfo } from '../queries/tenants.ts';
import { iso, ScopeSchema, TenantId } from './schemas.ts';
import { conflictError, errors, json, jsonBody, scoped } from '../../src/http/openapi.ts';

const TenantSchema = z.object({ id: z.string(), name: z.string(), created_at: z.string() }).openapi('Tenant');
const KeySchema = z
  .object({
    id: z.string(),
    tenant: z.string(),
    name: z.string(),
    prefix: z.string(),
    scopes: z.array(z.string()),
    created_at: z.string(),
    revoked_at: z.string().nullable(),
  })
  .openapi('ApiKey');
const NewKeySchema = KeySchema.extend({
  key: z.string().openapi({ description: 'the key itself: shown once, never stored' }),
}).openapi('NewApiKey');

const presentKey = (k: KeyInfo): z.infer<typeof KeySchema> => ({
  id: k.id,
  tenant: k.tenantId,
  name: k.name,
  prefix: k.prefix,
  scopes: k.scopes,
  created_at: iso(k.createdAt)!,
  revoked_at: iso(k.revokedAt),
});

const createTenantRoute = createRoute({
  method: 'post',
  path: '/v1/tenants',
  tags: ['admin'],
  summary: 'Create a tenant',
  ...scoped('admin'),
  request: { body: jsonBody(z.object({ id: TenantId, name: z.string().min(1).max(200).optional() }).strict()) },
  responses: { 201: json(TenantSchema, 'Created'), ...errors, ...conflictError },
});

const listTenantsRoute = createRoute({
  method: 'get',
  path: '/v1/tenants',
  tags: ['admin'],
  summary: 'List tenants',
  ...scoped('admin'),
  responses: { 200: json(z.object({ object: z.literal('list'), data: z.array(TenantSchema) }), 'Tenants'), ...errors },
});

const createKeyRoute = createRoute({
  method: 'post',
  path: '/v1/keys',
  tags: ['admin'],
  summary: 'Create an API key for a tenant (the key is in the response, once)',
  ...scoped('admin'),
  request: {
    body: jsonBody(
      z
        .object({
          tenant: TenantId,
          name: z.string().min(1).max(200).optional(),
          scopes: z.array(ScopeSchema).min(1).max(4),
        })
        .strict(),
    ),
  },
  responses: { 201: json(NewKeySchema, 'Created'), ...errors },
});

const listKeysRoute = createRoute({
  method: 'get',
  path: '/v1/keys',
  tags: ['admin'],
  summary: 'List API keys (never the keys themselves)',
  ...scoped('admin'),
  request: { query: z.object({ tenant: TenantId.optional() }) },
  responses: { 200: json(z.object({ object: z.literal('list'), data: z.array(KeySchema) }), 'Keys'), ...errors },
});

const revokeKeyRoute = createRoute({
  method: 'delete',
  path: '/v1/keys/{id}',
  tags: ['admin'],
  summary: 'Revoke an API key',
  ...scoped('admin'),
  request: {
    params: z.object({
      id: z
        .string()
        .regex(/^key_[a-z0-9]{1,40}$/, 'must be a key id (key_...)')
        .openapi({ param: { name: 'id', in: 'path' } }),
    }),
  },
  responses: { 200: json(KeySchema, 'Revoked'), ...errors },
});

const whoami = createRoute({
  method: 'get',
  path: '/v1/whoami',
  tags: ['admin'],
  summary: 'The key making the request: its id, tenant and scopes',
  ...scoped(),
  responses: {
    200: json(
      z
        .object({ key_id: z.string(), key_name: z.string(), tenant: z.string(), scopes: z.array(z.string()) })
        .openapi('WhoAmI'),
      'This key',
    ),
    ...errors,
  },
});

export function adminRoutes(): OpenAPIHono<AppEnv> {
  const app = new OpenAPIHono<AppEnv>();

  app.openapi(createTenantRoute, async (c) => {
    const body = c.req.valid('json');
    const t = await createTenant(c.var.deps.registry, body.id, body.name, c.var.deps.now());
    return c.json({ id: t.id, name: t.name, created_at: iso(t.createdAt)! }, 201);
  });

  app.openapi(listTenantsRoute, async (c) => {
    const data = (await listTenants(c.var.deps.registry.db)).map((t) => ({
      id: t.id,
      name: t.name,
      created_at: iso(t.createdAt)!,
    }));
    return c.json({ object: 'list' as const, data }, 200);
  });

  app.openapi(createKeyRoute, async (c) => {
    const body = c.req.valid('json');
    const { registry, now } = c.var.deps;
    if (!(await getTenant(registry.db, body.tenant)))
      throw notFound(`tenant "${body.tenant}" not found: create it first`, 'tenant_not_found');
    const k = await createApiKey(registry, { tenant: body.tenant, name: body.name, scopes: body.scopes, now: now() });
    return c.json({ ...presentKey({ ...k, revokedAt: null }), key: k.key }, 201);
  });

  app.openapi(listKeysRoute, async (c) => {
    const data = (await listApiKeys(c.var.deps.registry.db, c.req.valid('query').tenant)).map(presentKey);
    return c.json({ object: 'list' as const, data }, 200);
  });

  app.openapi(revokeKeyRoute, async (c) => {
    const k = await revokeApiKey(c.var.deps.registry, c.req.valid('param').id, c.var.deps.now());
    return c.json(presentKey(k), 200);
  });

  app.openapi(whoami, async (c) => {
    const p = principalOf(c);
    return c.json({ key_id: p.keyId, key_name: p.keyName, tenant: p.tenantId, scopes: p.scopes }, 200);
  });

  return app;
}
