import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { createApiKey } from '../auth.ts';
import { ApiError, notFound } from '../../src/http/errors.ts';
import { type RegistryEnv } from '../http.ts';
import { principalOf } from '../../src/http/middleware.ts';
import { isOperator, SCOPES, type Principal } from '../../src/http/principal.ts';
import {
  createTenant,
  DEFAULT_MAX_ADAPTER_FRACTION,
  getTenant,
  listApiKeys,
  listTenants,
  revokeApiKey,
  updateTenant,
  type KeyInfo,
  type TenantRow,
} from '../queries/tenants.ts';
import { iso, ScopeSchema, TenantId } from './schemas.ts';
import { conflictError, errors, json, jsonBody, scoped } from '../../src/http/openapi.ts';

const MaxAdapterFraction = z
  .number()
  .positive()
  .max(1000)
  .openapi({
    description:
      "the largest adapter the tenant may publish, as a fraction of its base's parameters " +
      `(default ${DEFAULT_MAX_ADAPTER_FRACTION}); null restores the default`,
  });
const TenantSchema = z
  .object({ id: z.string(), name: z.string(), max_adapter_fraction: z.number(), created_at: z.string() })
  .openapi('Tenant');
const TenantSettingsSchema = z
  .object({
    name: z.string().min(1).max(200).optional(),
    max_adapter_fraction: MaxAdapterFraction.nullable().optional(),
  })
  .strict();

const presentTenant = (t: TenantRow): z.infer<typeof TenantSchema> => ({
  id: t.id,
  name: t.name,
  max_adapter_fraction: t.maxAdapterFraction ?? DEFAULT_MAX_ADAPTER_FRACTION,
  created_at: iso(t.createdAt)!,
});
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
  summary: 'Create a tenant (operator)',
  ...scoped('operator'),
  request: { body: jsonBody(TenantSettingsSchema.extend({ id: TenantId }).strict()) },
  responses: { 201: json(TenantSchema, 'Created'), ...errors, ...conflictError },
});

const updateTenantRoute = createRoute({
  method: 'patch',
  path: '/v1/tenants/{id}',
  tags: ['admin'],
  summary: "Change a tenant's name or adapter size bound (operator)",
  ...scoped('operator'),
  request: {
    params: z.object({ id: TenantId.openapi({ param: { name: 'id', in: 'path' } }) }),
    body: jsonBody(TenantSettingsSchema),
  },
  responses: { 200: json(TenantSchema, 'Updated'), ...errors },
});

const listTenantsRoute = createRoute({
  method: 'get',
  path: '/v1/tenants',
  tags: ['admin'],
  summary: 'List tenants (operator)',
  ...scoped('operator'),
  responses: { 200: json(z.object({ object: z.literal('list'), data: z.array(TenantSchema) }), 'Tenants'), ...errors },
});

const createKeyRoute = createRoute({
  method: 'post',
  path: '/v1/keys',
  tags: ['admin'],
  summary: "Create an API key for the caller's tenant, or any tenant for the operator (the key is shown once)",
  ...scoped('admin'),
  request: {
    body: jsonBody(
      z
        .object({
          tenant: TenantId.optional().openapi({ description: "default: the caller's tenant" }),
          name: z.string().min(1).max(200).optional(),
          scopes: z.array(ScopeSchema).min(1).max(SCOPES.length),
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
  summary: "List the caller's tenant's API keys, or any tenant's for the operator (never the keys themselves)",
  ...scoped('admin'),
  request: { query: z.object({ tenant: TenantId.optional() }) },
  responses: { 200: json(z.object({ object: z.literal('list'), data: z.array(KeySchema) }), 'Keys'), ...errors },
});

const revokeKeyRoute = createRoute({
  method: 'delete',
  path: '/v1/keys/{id}',
  tags: ['admin'],
  summary: "Revoke one of the caller's tenant's API keys (any tenant's for the operator)",
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

export function adminRoutes(): OpenAPIHono<RegistryEnv> {
  const app = new OpenAPIHono<RegistryEnv>();

  app.openapi(createTenantRoute, async (c) => {
    const { id, name, max_adapter_fraction: maxAdapterFraction } = c.req.valid('json');
    const t = await createTenant(c.var.deps.registry, id, { name, maxAdapterFraction }, c.var.deps.now());
    return c.json(presentTenant(t), 201);
  });

  app.openapi(updateTenantRoute, async (c) => {
    const { name, max_adapter_fraction: maxAdapterFraction } = c.req.valid('json');
    const t = await updateTenant(c.var.deps.registry, c.req.valid('param').id, { name, maxAdapterFraction });
    return c.json(presentTenant(t), 200);
  });

  app.openapi(listTenantsRoute, async (c) => {
    const data = (await listTenants(c.var.deps.registry.db)).map(presentTenant);
    return c.json({ object: 'list' as const, data }, 200);
  });

  app.openapi(createKeyRoute, async (c) => {
    const p = principalOf(c);
    const body = c.req.valid('json');
    const tenant = tenantManagedBy(p, body.tenant);
    if (body.scopes.includes('operator') && !isOperator(p))
      throw new ApiError(403, 'only an operator key can create operator keys', 'insufficient_scope', 'scopes');
    const { registry, now } = c.var.deps;
    if (!(await getTenant(registry.db, tenant)))
      throw notFound(`tenant "${tenant}" not found: create it first`, 'tenant_not_found');
    const k = await createApiKey(registry, { tenant, name: body.name, scopes: body.scopes, now: now() });
    return c.json({ ...presentKey({ ...k, revokedAt: null }), key: k.key }, 201);
  });

  app.openapi(listKeysRoute, async (c) => {
    const p = principalOf(c);
    const asked = c.req.valid('query').tenant;
    const tenant = isOperator(p) ? asked : tenantManagedBy(p, asked);
    const data = (await listApiKeys(c.var.deps.registry.db, tenant)).map(presentKey);
    return c.json({ object: 'list' as const, data }, 200);
  });

  app.openapi(revokeKeyRoute, async (c) => {
    const p = principalOf(c);
    // Another tenant's key is answered as a missing one; an operator key is the operator's to revoke.
    const mayRevoke = (k: KeyInfo) => isOperator(p) || (k.tenantId === p.tenantId && !k.scopes.includes('operator'));
    const k = await revokeApiKey(c.var.deps.registry, c.req.valid('param').id, c.var.deps.now(), mayRevoke);
    return c.json(presentKey(k), 200);
  });

  app.openapi(whoami, async (c) => {
    const p = principalOf(c);
    return c.json({ key_id: p.keyId, key_name: p.keyName, tenant: p.tenantId, scopes: p.scopes }, 200);
  });

  return app;
}

/**
 * The tenant whose keys a request manages: the one asked for (default: the caller's own). A
 * tenant's admin manages only its own tenant; the answer is the same whether another tenant exists.
 */
function tenantManagedBy(p: Principal, asked: string | undefined): string {
  const tenant = asked ?? p.tenantId;
  if (tenant !== p.tenantId && !isOperator(p))
    throw new ApiError(
      403,
      `this key manages tenant "${p.tenantId}" only: another tenant's keys need an operator key`,
      'other_tenant',
      'tenant',
    );
  return tenant;
}
