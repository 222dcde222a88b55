import { z } from '@hono/zod-openapi';
import type { Scope } from './principal.ts';
import { requireScope } from './middleware.ts';

/** OpenAPI pieces every route module shares: the error shape, security and JSON bodies. */
const ErrorSchema = z
  .object({
    error: z.object({
      message: z.string(),
      type: z.string(),
      param: z.string().nullable(),
      code: z.string().nullable(),
    }),
  })
  .openapi('Error');

const errorContent = { content: { 'application/json': { schema: ErrorSchema } } };

/** The error responses every authenticated route may give. */
export const errors = {
  400: { description: 'Invalid request (validation, malformed JSON)', ...errorContent },
  401: { description: 'Missing, unknown or revoked API key', ...errorContent },
  403: { description: 'The key lacks the scope, or the resource belongs to another tenant', ...errorContent },
  404: { description: "Not found (or not visible to this key's tenant)", ...errorContent },
} as const;

export const conflictError = { 409: { description: 'Conflicts with the current state', ...errorContent } } as const;
export const goneError = { 410: { description: 'The version was yanked', ...errorContent } } as const;
export const rateLimitedError = {
  429: { description: 'Rate limit exceeded (see Retry-After)', ...errorContent },
} as const;

export const bearer = [{ bearer: [] as string[] }];

/** Route security + scope check, in the shape createRoute takes. */
export function scoped(...scopes: Scope[]) {
  return {
    security: bearer,
    middleware: [requireScope(...scopes)],
  };
}

export function json<T extends z.ZodType>(schema: T, description: string) {
  return { description, content: { 'application/json': { schema } } };
}

export function jsonBody<T extends z.ZodType>(schema: T) {
  return { required: true, content: { 'application/json': { schema } } };
}
