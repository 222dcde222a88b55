import type { Context } from 'hono';
import type { z } from 'zod';
import { RequestError } from '../engine/generation/request.ts';
import { errorBody } from '../http/errors.ts';
import { describeIssue, type AdapterRef, type NodeBase } from '../protocol/compute.ts';
import { IntegrityError } from './adapter-cache.ts';
import { BlobFetchError } from './blob-source.ts';
import type { ComputeState } from './state.ts';

/** Errors in the product's one shape (OpenAI's), as the edge passes them on. */
export const refuse = (
  c: Context,
  status: 400 | 401 | 404 | 409 | 422 | 429 | 502 | 503,
  message: string,
  code: string | null = null,
  param: string | null = null,
) => c.json(errorBody(status, message, code, param), status);

/**
 * A request's JSON body checked against its schema, or the 4xx that refuses it: not JSON, not
 * UTF-8, the wrong shape, or meant for another base (409 base_mismatch: the edge tries another node).
 */
export async function readBody<T extends { base?: { id?: string; sha256: string } }>(
  c: Context,
  state: ComputeState,
  schema: z.ZodType<T>,
): Promise<{ data: T } | Response> {
  if (!c.req.header('content-type')?.includes('application/json'))
    return refuse(c, 400, 'expected a JSON body (content-type: application/json)');
  let text: string;
  try {
    // Bad bytes would become U+FFFD silently (and a prompt the edge never sent): refused instead.
    text = new TextDecoder('utf-8', { fatal: true }).decode(await c.req.arrayBuffer());
  } catch {
    return refuse(c, 400, 'the body is not valid UTF-8', 'invalid_encoding');
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return refuse(c, 400, 'the body is not valid JSON');
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const { message, param } = describeIssue(parsed.error);
    return refuse(c, 400, message, 'validation_error', param);
  }
  const asked = parsed.data.base;
  if (asked && asked.sha256 !== state.base.sha256) {
    state.metrics.requests.inc({ outcome: 'base_mismatch' });
    const wanted = describeBase({ name: asked.id, sha256: asked.sha256 });
    return refuse(c, 409, `this node serves ${describeBase(state.base)}, not ${wanted}`, 'base_mismatch', 'base');
  }
  return { data: parsed.data };
}

/** The adapter made resident (fetched into the cache if need be) until `release`; none for the base. */
export async function holdAdapter(
  state: ComputeState,
  adapter: AdapterRef | null | undefined,
): Promise<{ engineId: string | undefined; release: () => void }> {
  return adapter ? state.cache.acquire(adapter) : { engineId: undefined, release: () => {} };
}

/**
 * The 4xx/5xx for an error raised before any output: a bad request, or an adapter that cannot be
 * fetched or loaded. Anything else is a bug, rethrown (the app's onError answers 500).
 */
export function failure(c: Context, state: ComputeState, e: unknown): Response {
  if (e instanceof RequestError) {
    state.metrics.requests.inc({ outcome: 'invalid' });
    return refuse(c, 400, e.message, undefined, e.param);
  }
  if (e instanceof IntegrityError) {
    state.metrics.requests.inc({ outcome: 'adapter_refused' });
    return refuse(c, 422, e.message, 'adapter_integrity');
  }
  if (e instanceof BlobFetchError) {
    state.metrics.requests.inc({ outcome: 'adapter_unavailable' });
    return refuse(c, 502, e.message, 'adapter_unavailable');
  }
  if (e instanceof Error && e.name === 'AdapterFormatError') {
    state.metrics.requests.inc({ outcome: 'adapter_refused' });
    return refuse(c, 422, e.message, 'adapter_invalid');
  }
  throw e;
}

/** A base for messages: `stories260k@1 (sha256 1f2e3d4c5b6a...)`, or its sha256 alone. */
export function describeBase(base: NodeBase): string {
  const name = base.name ? `${base.name}${base.version ? `@${base.version}` : ''} ` : '';
  return `${name}(sha256 ${base.sha256.slice(0, 12)}...)`;
}
