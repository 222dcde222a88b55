import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { ApiError, badRequest, notFound } from '../../src/http/errors.ts';
import { type RegistryEnv } from '../http.ts';
import { principalOf, setWarning } from '../../src/http/middleware.ts';
import {
  decorate,
  findVisibleAdapter,
  findWritableAdapter,
  getVersion,
  listAdapters,
  listVersions,
  resolveAdapter,
  setVersionStatus,
  updateAdapter,
  viewerOf,
  type AdapterListItem,
  type AdapterVersionDetail,
  type VersionSummary,
} from '../queries/adapters.ts';
import {
  AdapterParam,
  BehaviorSha256,
  FileParam,
  FileSchema,
  iso,
  ListMeta,
  page,
  PageQuery,
  StatusSchema,
  Tag,
  TokenizerSchema,
  VersionParam,
  VisibilitySchema,
  ChatTemplateText,
} from './schemas.ts';
import { conflictError, errors, goneError, json, jsonBody, scoped } from '../../src/http/openapi.ts';
import { formatRef } from '../names.ts';

const VersionSummarySchema = z
  .object({
    version: z.number().int(),
    status: StatusSchema,
    kind: z.enum(['vlm', 'lora']),
    sha256: z.string(),
    behavior_sha256: BehaviorSha256,
    bytes: z.number().int(),
    params: z.number().int(),
    params_pct_of_base: z.number(),
    base: z.string().openapi({ description: 'MODEL@VERSION' }),
    tags: z.array(z.string()),
    created_at: z.string(),
  })
  .openapi('AdapterVersionSummary');

const AdapterSchema = z
  .object({
    name: z.string(),
    owner: z.string().openapi({ description: 'tenant id' }),
    visibility: VisibilitySchema,
    task: z.string().nullable(),
    description: z.string().nullable(),
    chat_template: z
      .string()
      .nullable()
      .openapi({
        description:
          'Legacy adapter-wide Jinja chat template (templates now belong to versions): used by versions ' +
          'that have none of their own; it can only be removed (null)',
      }),
    created_at: z.string(),
    versions: z.number().int(),
    latest_version: VersionSummarySchema.nullable(),
    aliases: z.record(z.string(), z.number().int()),
  })
  .openapi('Adapter');

const VersionDetailSchema = z
  .object({
    adapter: z.string(),
    version: z.number().int(),
    ref: z.string(),
    status: StatusSchema,
    kind: z.enum(['vlm', 'lora']),
    bottleneck: z.number().int().nullable(),
    rank: z.number().int().nullable(),
    target_modules: z.array(z.string()),
    task_tokens: z.array(z.string()),
    params: z.number().int(),
    params_pct_of_base: z.number(),
    bytes: z.number().int(),
    sha256: z.string().openapi({
      description:
        "The version's content digest: sha256 of its manifest, one line `<file sha256>  <file name>\\n` per file " +
        'sorted by name (what `sha256sum` prints)',
    }),
    behavior_sha256: BehaviorSha256,
    weights_file: z.string(),
    base: z.object({
      model: z.string(),
      version: z.number().int(),
      ref: z.string(),
      sha256: z.string(),
      architecture: z.string(),
      params: z.number().int(),
      config: z.record(z.string(), z.unknown()),
      tokenizer: TokenizerSchema.nullable(),
      files: z.array(FileSchema),
    }),
    lineage: z.object({
      dataset: z.string().nullable(),
      training_notes: z.string().nullable(),
      license: z.string().nullable(),
    }),
    card: z.string().nullable(),
    metrics: z.record(z.string(), z.unknown()).nullable(),
    tags: z.array(z.string()),
    files: z.array(FileSchema),
    chat_template: z
      .string()
      .nullable()
      .openapi({
        description:
          "This version's Jinja chat template, set when it was published; null: the adapter's legacy " +
          "template if any, else the base model's, else task tokens and then the messages' text",
      }),
    created_at: z.string(),
    created_by: z.string().nullable(),
  })
  .openapi('AdapterVersion');

function presentSummary(v: Omit<VersionSummary, 'id'> & { id?: string }): z.infer<typeof VersionSummarySchema> {
  return {
    version: v.version,
    status: v.status,
    kind: v.kind,
    sha256: v.sha256,
    behavior_sha256: v.behaviorSha256,
    bytes: v.bytes,
    params: v.params,
    params_pct_of_base: v.paramsPctOfBase,
    base: formatRef(v.base, v.baseVersion),
    tags: v.tags,
    created_at: iso(v.createdAt)!,
  };
}

function presentAdapter(a: AdapterListItem): z.infer<typeof AdapterSchema> {
  return {
    name: a.name,
    owner: a.tenantId,
    visibility: a.visibility,
    task: a.task,
    description: a.description,
    chat_template: a.chatTemplate,
    created_at: iso(a.createdAt)!,
    versions: a.versions,
    latest_version: a.latest ? presentSummary(a.latest) : null,
    aliases: a.aliases,
  };
}

function presentVersion(v: AdapterVersionDetail): z.infer<typeof VersionDetailSchema> {
  return {
    adapter: v.adapter,
    version: v.version,
    ref: formatRef(v.adapter, v.version),
    status: v.status,
    kind: v.kind,
    bottleneck: v.bottleneck,
    rank: v.rank,
    target_modules: v.targetModules,
    task_tokens: v.taskTokens,
    params: v.params,
    params_pct_of_base: v.paramsPctOfBase,
    bytes: v.bytes,
    sha256: v.sha256,
    behavior_sha256: v.behaviorSha256,
    weights_file: v.weightsFile,
    base: {
      model: v.base.name,
      version: v.base.version,
      ref: formatRef(v.base.name, v.base.version),
      sha256: v.base.sha256,
      architecture: v.base.architecture,
      params: v.base.params,
      config: v.base.config as unknown as Record<string, unknown>,
      tokenizer: v.base.tokenizer,
      files: v.base.files,
    },
    lineage: { dataset: v.dataset, training_notes: v.trainingNotes, license: v.license },
    card: v.card,
    metrics: v.metrics ?? null,
    tags: v.tags,
    files: v.files,
    chat_template: v.chatTemplate,
    created_at: iso(v.createdAt)!,
    created_by: v.createdBy,
  };
}

const AdapterListSchema = z.object({ ...ListMeta, data: z.array(AdapterSchema) }).openapi('AdapterList');
const VersionListSchema = z.object({ ...ListMeta, data: z.array(VersionSummarySchema) }).openapi('AdapterVersionList');
const AdapterDetailSchema = AdapterSchema.extend({ version_list: z.array(VersionSummarySchema) }).openapi(
  'AdapterDetail',
);
const ResolutionSchema = VersionDetailSchema.extend({
  via: z.enum(['pin', 'alias', 'default']),
  alias: z.string().nullable(),
  warning: z.string().nullable(),
}).openapi('Resolution');

const list = createRoute({
  method: 'get',
  path: '/v1/adapters',
  tags: ['adapters'],
  summary: 'Search adapters visible to this key (cursor-paginated, by name)',
  ...scoped('read'),
  request: {
    query: PageQuery.extend({
      base: z.string().max(200).optional().openapi({ description: 'base model NAME or NAME@VERSION' }),
      task: z.string().max(100).optional(),
      tag: Tag.optional(),
      q: z
        .string()
        .max(200)
        .optional()
        .openapi({ description: 'text in name, task, description, model card or dataset' }),
      owner: z.string().max(100).optional().openapi({ description: "only this tenant's adapters" }),
    }),
  },
  responses: { 200: json(AdapterListSchema, 'A page of adapters'), ...errors },
});

const get = createRoute({
  method: 'get',
  path: '/v1/adapters/{adapter}',
  tags: ['adapters'],
  summary: 'An adapter, its aliases and its latest versions',
  ...scoped('read'),
  request: { params: AdapterParam },
  responses: { 200: json(AdapterDetailSchema, 'Adapter'), ...errors },
});

const patch = createRoute({
  method: 'patch',
  path: '/v1/adapters/{adapter}',
  tags: ['adapters'],
  summary:
    "Change an adapter's visibility, task or description, or remove its legacy chat template (a template " +
    'belongs to a version: publish a new version to change it)',
  ...scoped('publish'),
  request: {
    params: AdapterParam,
    body: jsonBody(
      z
        .object({
          visibility: VisibilitySchema.optional(),
          task: z.string().max(100).nullable().optional(),
          description: z.string().max(10_000).nullable().optional(),
          chat_template: ChatTemplateText.nullable().optional(),
        })
        .strict(),
    ),
  },
  responses: { 200: json(AdapterSchema, 'Adapter'), ...errors },
});

const versions = createRoute({
  method: 'get',
  path: '/v1/adapters/{adapter}/versions',
  tags: ['adapters'],
  summary: 'Versions of an adapter, newest first (cursor-paginated)',
  ...scoped('read'),
  request: { params: AdapterParam, query: PageQuery },
  responses: { 200: json(VersionListSchema, 'A page of versions'), ...errors },
});

const version = createRoute({
  method: 'get',
  path: '/v1/adapters/{adapter}/versions/{version}',
  tags: ['adapters'],
  summary:
    'One version with its files, base and lineage (a deprecated or yanked version answers with a warning header)',
  ...scoped('read'),
  request: { params: AdapterParam.merge(VersionParam) },
  responses: { 200: json(VersionDetailSchema, 'Version'), ...errors },
});

const patchVersion = createRoute({
  method: 'patch',
  path: '/v1/adapters/{adapter}/versions/{version}',
  tags: ['adapters'],
  summary: "Set a version's status: active, deprecated (still served when pinned, with a warning) or yanked (refused)",
  ...scoped('publish'),
  request: { params: AdapterParam.merge(VersionParam), body: jsonBody(z.object({ status: StatusSchema }).strict()) },
  responses: { 200: json(VersionDetailSchema, 'Version'), ...errors, ...conflictError },
});

const file = createRoute({
  method: 'get',
  path: '/v1/adapters/{adapter}/versions/{version}/files/{name}',
  tags: ['adapters'],
  summary: 'Download one file of a version (ETag and x-versa-sha256 carry its sha256)',
  ...scoped('read'),
  request: { params: AdapterParam.merge(VersionParam).merge(FileParam) },
  responses: {
    200: {
      description: 'The file',
      content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } },
    },
    ...errors,
    ...goneError,
  },
});

const resolve = createRoute({
  method: 'get',
  path: '/v1/resolve',
  tags: ['adapters'],
  summary:
    'Resolve NAME, NAME@VERSION or NAME@ALIAS to one version with its base and files ' +
    '(what compute nodes and the edge serve)',
  ...scoped('read', 'generate'),
  request: { query: z.object({ model: z.string().min(1).max(200) }) },
  responses: { 200: json(ResolutionSchema, 'The version that serves this reference'), ...errors, ...goneError },
});

export function adapterRoutes(): OpenAPIHono<RegistryEnv> {
  const app = new OpenAPIHono<RegistryEnv>();

  app.openapi(list, async (c) => {
    const p = principalOf(c);
    const q = c.req.valid('query');
    const result = await listAdapters(c.var.deps.registry.db, viewerOf(p), { ...q, tenant: q.owner });
    return c.json(page(result.data.map(presentAdapter), result.nextCursor), 200);
  });

  app.openapi(get, async (c) => {
    const p = principalOf(c);
    const db = c.var.deps.registry.db;
    const adapter = await findVisibleAdapter(db, c.req.valid('param').adapter, viewerOf(p));
    const [item] = await decorate(db, [adapter]);
    const recent = await listVersions(db, adapter, { limit: 50 });
    return c.json({ ...presentAdapter(item), version_list: recent.data.map(presentSummary) }, 200);
  });

  app.openapi(patch, async (c) => {
    const p = principalOf(c);
    const { registry } = c.var.deps;
    const adapter = await findWritableAdapter(registry.db, c.req.valid('param').adapter, viewerOf(p));
    const { chat_template: chatTemplate, ...patch } = c.req.valid('json');
    if (typeof chatTemplate === 'string')
      throw badRequest(
        'a chat template belongs to an adapter version, so that a change is a new version (and can be A/B tested): ' +
          'publish a new version with it (multipart field chat_template, or `versa publish --chat-template FILE`)',
        'chat_template_per_version',
        'chat_template',
      );
    const updated = await updateAdapter(registry, adapter, { ...patch, chatTemplate });
    const [item] = await decorate(registry.db, [updated]);
    return c.json(presentAdapter(item), 200);
  });

  app.openapi(versions, async (c) => {
    const p = principalOf(c);
    const db = c.var.deps.registry.db;
    const adapter = await findVisibleAdapter(db, c.req.valid('param').adapter, viewerOf(p));
    const result = await listVersions(db, adapter, c.req.valid('query'));
    return c.json(page(result.data.map(presentSummary), result.nextCursor), 200);
  });

  app.openapi(version, async (c) => {
    const p = principalOf(c);
    const db = c.var.deps.registry.db;
    const params = c.req.valid('param');
    const adapter = await findVisibleAdapter(db, params.adapter, viewerOf(p));
    const v = await getVersion(db, adapter, params.version);
    if (!v) throw notFound(`adapter "${adapter.name}" has no version ${params.version}`, 'version_not_found');
    if (v.status !== 'active') setWarning(c, `${adapter.name}@${v.version} is ${v.status}`);
    return c.json(presentVersion(v), 200);
  });

  app.openapi(patchVersion, async (c) => {
    const p = principalOf(c);
    const { registry } = c.var.deps;
    const params = c.req.valid('param');
    const adapter = await findWritableAdapter(registry.db, params.adapter, viewerOf(p));
    const v = await setVersionStatus(registry, adapter, params.version, c.req.valid('json').status);
    return c.json(presentVersion(v), 200);
  });

  app.openapi(file, async (c) => {
    const p = principalOf(c);
    const { registry, blobs } = c.var.deps;
    const params = c.req.valid('param');
    const resolved = await resolveAdapter(registry.db, { name: params.adapter, version: params.version }, viewerOf(p));
    const entry = resolved.version.files.find((f) => f.name === params.name);
    if (!entry)
      throw notFound(`${resolved.adapter.name}@${params.version} has no file "${params.name}"`, 'file_not_found');
    if (resolved.warning) setWarning(c, resolved.warning);
    const etag = `"${entry.sha256}"`;
    c.header('ETag', etag);
    c.header('x-versa-sha256', entry.sha256);
    c.header('Cache-Control', 'private, max-age=300');
    if (c.req.header('if-none-match') === etag) return c.body(null, 304);
    const blob = await blobs.get(entry.sha256);
    if (!blob)
      throw new ApiError(
        500,
        `the content of ${params.name} (sha256 ${entry.sha256}) is missing from the blob store`,
        'blob_missing',
      );
    c.header('Content-Type', params.name.endsWith('.json') ? 'application/json' : 'application/octet-stream');
    c.header('Content-Length', String(blob.bytes));
    c.header('Content-Disposition', `attachment; filename="${params.name}"`);
    return c.body(blob.body, 200);
  });

  app.openapi(resolve, async (c) => {
    const p = principalOf(c);
    const r = await resolveAdapter(c.var.deps.registry.db, c.req.valid('query').model, viewerOf(p));
    if (r.warning) setWarning(c, r.warning);
    return c.json(
      { ...presentVersion(r.version), via: r.via, alias: r.alias ?? null, warning: r.warning ?? null },
      200,
    );
  });

  return app;
}
