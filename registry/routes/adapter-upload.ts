import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { ApiError } from '../../src/http/errors.ts';
import { type RegistryEnv } from '../http.ts';
import { principalOf } from '../../src/http/middleware.ts';
import { formDataBoundary } from '../multipart.ts';
import { publishAdapterVersion } from '../publish-adapter-version.ts';
import { AdapterParam, BehaviorSha256, FileSchema } from './schemas.ts';
import { conflictError, errors, json, scoped } from '../../src/http/openapi.ts';
import { formatRef } from '../names.ts';

/** Idempotency-Key: bounded, visible ASCII (it is stored per tenant and echoed in messages). */
const IDEMPOTENCY_KEY_RE = /^[\x21-\x7e]{1,255}$/;

const PublishedSchema = z
  .object({
    adapter: z.string(),
    version: z.number().int(),
    ref: z.string(),
    sha256: z.string().openapi({
      description:
        "The version's content digest: sha256 of `<file sha256>  <name>\\n` lines sorted by name " +
        '(sha256sum output) over all its files: what a compute node checks',
    }),
    behavior_sha256: BehaviorSha256,
    bytes: z.number().int().openapi({ description: 'all files together' }),
    params: z.number().int(),
    params_pct_of_base: z.number(),
    base: z.string().openapi({ description: 'MODEL@VERSION' }),
    kind: z.enum(['vlm', 'lora']),
    files: z.array(FileSchema),
    alias: z.string().nullable(),
    status: z.literal('active'),
  })
  .openapi('Published');
/** What POST /v1/adapters/{adapter}/versions answers (201): the version made, in the wire's names. */
export type PublishResponse = z.infer<typeof PublishedSchema>;

/** The form, for the OpenAPI document only: the handler streams the body itself (never buffered). */
const formSchema = {
  type: 'object' as const,
  required: ['base'],
  description:
    'Fields first (`base` before any file), then files: ' +
    'adapter_config.json (required for PEFT LoRA) before the weights, ' +
    'the weights (adapter.safetensors for VLM, adapter_model.safetensors for LoRA) last. ' +
    'Each file is a part with a filename.',
  properties: {
    base: { type: 'string' as const, description: 'MODEL@VERSION the adapter was trained on' },
    alias: { type: 'string' as const, description: 'point this alias at the new version, in the same write' },
    visibility: { type: 'string' as const, enum: ['private', 'public'] },
    task: { type: 'string' as const },
    description: { type: 'string' as const },
    dataset: { type: 'string' as const },
    training_notes: { type: 'string' as const },
    license: { type: 'string' as const },
    card: { type: 'string' as const, description: 'model card, markdown' },
    metrics: { type: 'string' as const, description: 'JSON object' },
    tags: { type: 'string' as const, description: 'comma-separated, or a JSON array' },
    checksums: {
      type: 'string' as const,
      description: 'JSON object {file name: sha256}: verified before the version is visible',
    },
    file: { type: 'array' as const, items: { type: 'string' as const, format: 'binary' } },
  },
};

/**
 * Whether a request is the adapter upload: the one route whose body is streamed, not buffered (it
 * enforces its own per-file and per-field limits), so the app's overall body limit skips it.
 */
export const isAdapterUpload = (method: string, path: string): boolean =>
  method === 'POST' && /^\/v1\/adapters\/[^/]+\/versions$/.test(path);

const publish = createRoute({
  method: 'post',
  path: '/v1/adapters/{adapter}/versions',
  tags: ['adapters'],
  summary:
    'Publish a new version (multipart): validated against its base before it is stored, visible only once complete',
  ...scoped('publish'),
  request: {
    params: AdapterParam,
    headers: z.object({
      'idempotency-key': z
        .string()
        .regex(IDEMPOTENCY_KEY_RE, 'must be 1-255 visible ASCII characters')
        .optional()
        .openapi({
          description:
            'Retry-safe publish: a retry with the same key (same tenant, same request) answers the first ' +
            "attempt's version instead of making another; the same key with a different request is a 422",
        }),
    }),
    body: { required: true, content: { 'multipart/form-data': { schema: formSchema } } },
  },
  responses: {
    201: json(PublishedSchema, 'Published'),
    ...errors,
    ...conflictError,
    422: {
      description: 'The Idempotency-Key was used for a different request',
      content: { 'application/json': { schema: z.object({ error: z.object({ message: z.string() }) }) } },
    },
    413: {
      description: 'A file or field is over its limit',
      content: { 'application/json': { schema: z.object({ error: z.object({ message: z.string() }) }) } },
    },
    415: {
      description: 'Not multipart/form-data',
      content: { 'application/json': { schema: z.object({ error: z.object({ message: z.string() }) }) } },
    },
  },
});

export function publishRoutes(): OpenAPIHono<RegistryEnv> {
  const app = new OpenAPIHono<RegistryEnv>();
  app.openapi(publish, async (c) => {
    const p = principalOf(c);
    const { adapter } = c.req.valid('param');
    const boundary = formDataBoundary(c.req.header('content-type'));
    if (!boundary)
      throw new ApiError(415, 'send the adapter as multipart/form-data (with a boundary)', 'unsupported_media_type');
    const declared = Number(c.req.header('content-length') ?? 0);
    const limits = c.var.deps.limits;
    const max = limits.maxWeightsBytes + limits.maxFiles * limits.maxSmallFileBytes + 16 * limits.maxFieldBytes;
    if (declared > max)
      throw new ApiError(413, `the request is ${declared} bytes; the limit is ${max}`, 'payload_too_large');
    const body = c.req.raw.body;
    if (!body) throw new ApiError(400, 'empty request body', 'invalid_multipart');
    const key = c.req.valid('header')['idempotency-key'];
    const r = await publishAdapterVersion(c.var.deps, p, adapter, body, boundary, key);
    c.header('Location', `/v1/adapters/${r.adapter}/versions/${r.version}`);
    if (r.replayed) c.header('Idempotent-Replayed', 'true');
    return c.json(
      {
        adapter: r.adapter,
        version: r.version,
        ref: formatRef(r.adapter, r.version),
        sha256: r.sha256,
        behavior_sha256: r.behaviorSha256,
        bytes: r.bytes,
        params: r.params,
        params_pct_of_base: r.paramsPctOfBase,
        base: r.base,
        kind: r.kind,
        files: r.files,
        alias: r.alias,
        status: 'active' as const,
      },
      201,
    );
  });
  return app;
}
