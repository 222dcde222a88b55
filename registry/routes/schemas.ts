import { z } from '@hono/zod-openapi';
import { AliasName, FileName, Name, Sha256, Tag, TenantId, VersionNumber } from '../names.ts';
import { VERSION_STATUSES, VISIBILITIES } from '../schema.ts';
import { SCOPES } from '../../src/http/principal.ts';
import { ARCHITECTURES, CONFIG_LIMITS } from '../../src/engine/model/config.ts';
import { chatTemplateError } from '../template-check.ts';

/** Shared request/response schemas of the registry API (they are also its OpenAPI components). */

// ---- path and query parameters ----

export const ModelParam = z.object({
  model: Name.openapi({ param: { name: 'model', in: 'path' }, example: 'tiny-gpt2' }),
});
export const AdapterParam = z.object({
  adapter: Name.openapi({ param: { name: 'adapter', in: 'path' }, example: 'summarize' }),
});
export const VersionParam = z.object({
  version: VersionNumber.openapi({ param: { name: 'version', in: 'path' }, type: 'integer', example: 3 }),
});
export const AliasParam = z.object({
  alias: AliasName.openapi({ param: { name: 'alias', in: 'path' }, example: 'production' }),
});
export const FileParam = z.object({
  name: FileName.openapi({ param: { name: 'name', in: 'path' }, example: 'adapter.safetensors' }),
});

export const PageQuery = z.object({
  cursor: z.string().max(512).optional().openapi({ description: 'next_cursor of the previous page' }),
  limit: z.coerce.number().int().min(1).max(200).optional().openapi({ description: 'page size (default 50)' }),
});

// ---- shared shapes ----

export const FileSchema = z
  .object({ name: FileName, sha256: Sha256, bytes: z.number().int().nonnegative() })
  .openapi('File');

export const ModelConfigSchema = z
  .object({
    architecture: z.enum(ARCHITECTURES),
    vocabSize: z.number().int().positive().max(CONFIG_LIMITS.vocabSize),
    hiddenSize: z.number().int().positive().max(CONFIG_LIMITS.hiddenSize),
    numLayers: z.number().int().positive().max(CONFIG_LIMITS.numLayers),
    numHeads: z.number().int().positive().max(CONFIG_LIMITS.numHeads),
    numKvHeads: z.number().int().positive().max(CONFIG_LIMITS.numKvHeads),
    headDim: z.number().int().positive().max(CONFIG_LIMITS.headDim),
    intermediateSize: z.number().int().positive().max(CONFIG_LIMITS.intermediateSize),
    maxPositions: z.number().int().positive().max(CONFIG_LIMITS.maxPositions),
    normEps: z.number().positive(),
    tiedEmbeddings: z.boolean(),
    ropeTheta: z.number().positive().optional(),
    ropeLayout: z.enum(['interleaved', 'half']).optional(),
    bosTokenId: z.number().int().nonnegative().optional(),
    eosTokenId: z.union([z.number().int().nonnegative(), z.array(z.number().int().nonnegative())]).optional(),
  })
  // The engine owns ModelConfig: fields it adds later are kept, not refused.
  .loose()
  .refine((c) => c.numHeads % c.numKvHeads === 0, {
    message: 'numHeads must be a multiple of numKvHeads',
    path: ['numKvHeads'],
  })
  .openapi('ModelConfig', {
    description: "The engine's architecture-independent model description (src/engine/model/config.ts)",
  });

export const TokenizerSchema = z
  .object({
    kind: z.enum(['hf', 'llama2c']),
    file: FileName,
    sha256: Sha256,
    bytes: z.number().int().nonnegative(),
    chat_template: z
      .lazy(() => ChatTemplateText)
      .optional()
      .openapi({ description: "the tokenizer's own chat template (tokenizer_config.json), the base's default" }),
  })
  .openapi('Tokenizer');

export const BehaviorSha256 = z
  .string()
  .nullable()
  .openapi({
    description:
      "What the version does: sha256 of the lines `<sha256>  files`, `<base version's sha256>  base` and, " +
      'when the version has its own chat template, `<sha256 of the template>  chat_template` (each ending ' +
      'in \\n). Another template or base gives another digest for the same files. Null only for a version ' +
      "published before it existed, until the registry's sweep fills it in",
  });

export const ListMeta = { object: z.literal('list'), next_cursor: z.string().nullable(), has_more: z.boolean() };

export function page<T>(data: T[], nextCursor: string | null) {
  return { object: 'list' as const, data, next_cursor: nextCursor, has_more: nextCursor !== null };
}

export const iso = (d: Date | null | undefined) => (d ? d.toISOString() : null);
export const unixSeconds = (d: Date) => Math.floor(d.getTime() / 1000);

export const ScopeSchema = z.enum(SCOPES);
export const StatusSchema = z.enum(VERSION_STATUSES);
export const VisibilitySchema = z.enum(VISIBILITIES);
export { AliasName, Name, Tag, TenantId };

/** A chat template, parsed when it is saved: a syntax error is a 400 with the parser's message and line. */
export const ChatTemplateText = z
  .string()
  .max(100_000)
  .superRefine((source, ctx) => {
    const message = chatTemplateError(source);
    if (message) ctx.addIssue({ code: 'custom', message });
  });
