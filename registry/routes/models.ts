import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { isOperator } from '../../src/http/principal.ts';
import { ARCHITECTURES } from '../../src/engine/model/config.ts';
import { ApiError, notFound } from '../../src/http/errors.ts';
import { type RegistryEnv } from '../http.ts';
import { principalOf } from '../../src/http/middleware.ts';
import { decodeCursor, encodeCursor, listAdapters, viewerOf, type AdapterListItem } from '../queries/adapters.ts';
import {
  baseDigests,
  createBaseModel,
  getBaseModel,
  getBaseVersion,
  listBaseModels,
  listBaseVersions,
  registerBaseVersion,
  setBaseVersionStatus,
  type BaseVersion,
  type BaseVersionInput,
} from '../queries/models.ts';
import {
  FileSchema,
  iso,
  ListMeta,
  ModelConfigSchema,
  ModelParam,
  Name,
  page,
  PageQuery,
  StatusSchema,
  TokenizerSchema,
  unixSeconds,
  VersionParam,
} from './schemas.ts';
import { conflictError, errors, json, jsonBody, scoped } from '../../src/http/openapi.ts';
import { formatRef } from '../names.ts';

/**
 * Base models, and `GET /v1/models`, which is both the registry's list of base models and the
 * OpenAI-compatible list of what a key may put in `model`: base models, adapters, ADAPTER@ALIAS.
 */

const BaseVersionInputSchema = z
  .object({
    architecture: z.enum(ARCHITECTURES),
    config: ModelConfigSchema,
    tokenizer: TokenizerSchema.nullable().optional(),
    files: z.array(FileSchema).max(1000),
    params: z.number().int().positive().optional().openapi({ description: 'default: computed from config' }),
    notes: z.string().max(10_000).optional(),
  })
  .strict()
  .refine((v) => v.architecture === v.config.architecture, {
    message: 'must equal config.architecture',
    path: ['architecture'],
  })
  .refine((v) => new Set(v.files.map((f) => f.name)).size === v.files.length, {
    message: 'file names must be unique',
    path: ['files'],
  })
  .openapi('BaseVersionInput');

const BaseVersionSchema = z
  .object({
    model: z.string(),
    version: z.number().int(),
    ref: z.string(),
    architecture: z.string(),
    config: z.record(z.string(), z.unknown()),
    tokenizer: TokenizerSchema.nullable(),
    params: z.number().int(),
    bytes: z.number().int(),
    sha256: z.string().openapi({ description: 'sha256 of the file manifest (see the adapter version sha256)' }),
    status: z.string(),
    notes: z.string().nullable(),
    files: z.array(FileSchema),
    created_at: z.string(),
  })
  .openapi('BaseModelVersion');

const ModelObjectSchema = z
  .object({
    id: z.string(),
    object: z.literal('model'),
    created: z.number().int(),
    owned_by: z.string(),
    kind: z.enum(['base', 'adapter']),
    base: z.string().nullable().optional(),
    adapter: z.string().optional(),
    alias: z.string().optional(),
    version: z.number().int().nullable().optional(),
    servable: z
      .boolean()
      .optional()
      .openapi({
        description:
          'Whether a healthy compute node serves its base version now (by the sha256 of its files): ' +
          'false means a request for it gets 503 no_node_for_base. Only from an edge with compute nodes.',
      }),
  })
  .openapi('Model', { description: 'OpenAI model object, plus what it is in the registry' });

const ModelListSchema = z.object({ object: z.literal('list'), data: z.array(ModelObjectSchema) }).openapi('ModelList');

const BaseModelSchema = z
  .object({
    id: z.string(),
    object: z.literal('model'),
    created: z.number().int(),
    owned_by: z.string(),
    kind: z.literal('base'),
    description: z.string().nullable(),
    latest_version: z.number().int().nullable(),
    versions: z.array(BaseVersionSchema),
  })
  .openapi('BaseModel');

function presentBaseVersion(v: BaseVersion): z.infer<typeof BaseVersionSchema> {
  return {
    model: v.model,
    version: v.version,
    ref: formatRef(v.model, v.version),
    architecture: v.architecture,
    config: v.config as unknown as Record<string, unknown>,
    tokenizer: v.tokenizer ?? null,
    params: v.params,
    bytes: v.bytes,
    sha256: v.sha256,
    status: v.status,
    notes: v.notes,
    files: v.files,
    created_at: iso(v.createdAt)!,
  };
}

const listModels = createRoute({
  method: 'get',
  path: '/v1/models',
  tags: ['models'],
  summary: 'Models this key may use: base models, adapters and ADAPTER@ALIAS (OpenAI list shape)',
  ...scoped('read', 'generate'),
  responses: { 200: json(ModelListSchema, 'Models'), ...errors },
});

const createModel = createRoute({
  method: 'post',
  path: '/v1/models',
  tags: ['models'],
  summary: 'Register a base model (optionally with its first version)',
  ...scoped('publish'),
  request: {
    body: jsonBody(
      z
        .object({
          name: Name,
          description: z.string().max(10_000).optional(),
          version: BaseVersionInputSchema.optional(),
        })
        .strict(),
    ),
  },
  responses: { 201: json(BaseModelSchema, 'Created'), ...errors, ...conflictError },
});

const getModel = createRoute({
  method: 'get',
  path: '/v1/models/{model}',
  tags: ['models'],
  summary: 'A base model with its versions',
  ...scoped('read', 'generate'),
  request: { params: ModelParam },
  responses: { 200: json(BaseModelSchema, 'Base model'), ...errors },
});

const createVersion = createRoute({
  method: 'post',
  path: '/v1/models/{model}/versions',
  tags: ['models'],
  summary: 'Register a new base model version (metadata: compute nodes hold the weights); creates the model if new',
  ...scoped('publish'),
  request: { params: ModelParam, body: jsonBody(BaseVersionInputSchema) },
  responses: { 201: json(BaseVersionSchema, 'Created'), ...errors, ...conflictError },
});

const listVersions = createRoute({
  method: 'get',
  path: '/v1/models/{model}/versions',
  tags: ['models'],
  summary: 'Versions of a base model, newest first (cursor-paginated)',
  ...scoped('read', 'generate'),
  request: { params: ModelParam, query: PageQuery },
  responses: {
    200: json(
      z.object({ ...ListMeta, data: z.array(BaseVersionSchema) }).openapi('BaseModelVersionList'),
      'A page of versions',
    ),
    ...errors,
  },
});

const patchVersion = createRoute({
  method: 'patch',
  path: '/v1/models/{model}/versions/{version}',
  tags: ['models'],
  summary: "Set a base model version's status (deprecated, yanked: no new adapters on it)",
  ...scoped('publish'),
  request: { params: ModelParam.merge(VersionParam), body: jsonBody(z.object({ status: StatusSchema }).strict()) },
  responses: { 200: json(BaseVersionSchema, 'Base model version'), ...errors },
});

const getVersion = createRoute({
  method: 'get',
  path: '/v1/models/{model}/versions/{version}',
  tags: ['models'],
  summary: 'One base model version',
  ...scoped('read', 'generate'),
  request: { params: ModelParam.merge(VersionParam) },
  responses: { 200: json(BaseVersionSchema, 'Base model version'), ...errors },
});

export function modelRoutes(): OpenAPIHono<RegistryEnv> {
  const app = new OpenAPIHono<RegistryEnv>();

  app.openapi(listModels, async (c) => {
    const p = principalOf(c);
    const db = c.var.deps.registry.db;
    const data: z.infer<typeof ModelObjectSchema>[] = [];
    for (const m of await listBaseModels(db)) {
      data.push({
        id: m.name,
        object: 'model',
        created: unixSeconds(m.createdAt),
        owned_by: m.tenantId,
        kind: 'base',
        version: m.latestVersion,
      });
    }
    for (let cursor: string | undefined, guard = 0; guard < 50; guard++) {
      const pageOf = await listAdapters(db, viewerOf(p), { cursor, limit: 200 });
      for (const a of pageOf.data) data.push(...adapterModels(a));
      if (!pageOf.nextCursor) break;
      cursor = pageOf.nextCursor;
    }
    const servable = c.var.deps.servable;
    if (servable) {
      // A base entry serves the version its bare name resolves to; an adapter entry, the base it shows.
      const [serves, digests] = await Promise.all([servable(), baseDigests(db)]);
      for (const m of data) {
        const ref = m.kind === 'base' ? m.id : m.base;
        const sha256 = ref ? digests.get(ref) : undefined;
        const name = ref?.split('@')[0];
        m.servable = !!(sha256 && name && serves({ name, sha256 }));
      }
    }
    return c.json({ object: 'list' as const, data }, 200);
  });

  app.openapi(createModel, async (c) => {
    const p = principalOf(c);
    const body = c.req.valid('json');
    const { registry, now } = c.var.deps;
    if (body.version) {
      await registerBaseVersion(registry, body.name, body.version as BaseVersionInput, {
        tenantId: p.tenantId,
        keyId: p.keyId,
        description: body.description,
        now: now(),
        createOnly: true,
      });
    } else {
      await createBaseModel(registry, body.name, { tenantId: p.tenantId, description: body.description, now: now() });
    }
    return c.json(await presentModel(c.var.deps.registry.db, body.name), 201);
  });

  app.openapi(getModel, async (c) => {
    const { model } = c.req.valid('param');
    return c.json(await presentModel(c.var.deps.registry.db, model), 200);
  });

  app.openapi(createVersion, async (c) => {
    const p = principalOf(c);
    const { model } = c.req.valid('param');
    const { registry, now } = c.var.deps;
    const existing = await getBaseModel(registry.db, model);
    if (existing && existing.tenantId !== p.tenantId && !isOperator(p)) {
      throw new ApiError(403, `base model "${model}" belongs to another tenant`, 'not_owner');
    }
    const input = c.req.valid('json') as BaseVersionInput;
    const created = await registerBaseVersion(registry, model, input, {
      tenantId: p.tenantId,
      keyId: p.keyId,
      now: now(),
    });
    const v = await getBaseVersion(registry.db, model, created.version);
    return c.json(presentBaseVersion(v!), 201);
  });

  app.openapi(listVersions, async (c) => {
    const db = c.var.deps.registry.db;
    const { model } = c.req.valid('param');
    const { cursor, limit = 50 } = c.req.valid('query');
    const row = await getBaseModel(db, model);
    if (!row) throw notFound(`base model "${model}" not found`, 'model_not_found');
    const before = cursor ? Number(decodeCursor(cursor)) : undefined;
    const versions = await listBaseVersions(db, row, {
      before: Number.isFinite(before) ? before : undefined,
      limit: limit + 1,
    });
    const data = versions.slice(0, limit);
    return c.json(
      page(data.map(presentBaseVersion), versions.length > limit ? encodeCursor(data[data.length - 1].version) : null),
      200,
    );
  });

  app.openapi(patchVersion, async (c) => {
    const p = principalOf(c);
    const { model, version } = c.req.valid('param');
    const { registry } = c.var.deps;
    const row = await getBaseModel(registry.db, model);
    if (!row) throw notFound(`base model "${model}" not found`, 'model_not_found');
    if (row.tenantId !== p.tenantId && !isOperator(p))
      throw new ApiError(403, `base model "${model}" belongs to another tenant`, 'not_owner');
    return c.json(
      presentBaseVersion(await setBaseVersionStatus(registry, model, version, c.req.valid('json').status)),
      200,
    );
  });

  app.openapi(getVersion, async (c) => {
    const { model, version } = c.req.valid('param');
    const v = await getBaseVersion(c.var.deps.registry.db, model, version);
    if (!v) throw notFound(`base model version ${model}@${version} not found`, 'model_not_found');
    return c.json(presentBaseVersion(v), 200);
  });

  return app;
}

async function presentModel(
  db: Parameters<typeof getBaseModel>[0],
  name: string,
): Promise<z.infer<typeof BaseModelSchema>> {
  const model = await getBaseModel(db, name);
  if (!model) throw notFound(`base model "${name}" not found`, 'model_not_found');
  const versions = await listBaseVersions(db, model);
  return {
    id: model.name,
    object: 'model',
    created: unixSeconds(model.createdAt),
    owned_by: model.tenantId,
    kind: 'base',
    description: model.description,
    latest_version: versions[0]?.version ?? null,
    versions: versions.map(presentBaseVersion),
  };
}

/** An adapter as OpenAI model objects: `NAME` itself and one `NAME@ALIAS` per alias. */
function adapterModels(a: AdapterListItem): z.infer<typeof ModelObjectSchema>[] {
  const base = a.latest ? formatRef(a.latest.base, a.latest.baseVersion) : null;
  const created = unixSeconds(a.createdAt);
  const out: z.infer<typeof ModelObjectSchema>[] = [
    {
      id: a.name,
      object: 'model',
      created,
      owned_by: a.tenantId,
      kind: 'adapter',
      adapter: a.name,
      base,
      version: a.aliases.production ?? a.latest?.version ?? null,
    },
  ];
  for (const [alias, version] of Object.entries(a.aliases).sort()) {
    out.push({
      id: `${a.name}@${alias}`,
      object: 'model',
      created,
      owned_by: a.tenantId,
      kind: 'adapter',
      adapter: a.name,
      alias,
      base,
      version,
    });
  }
  return out;
}
