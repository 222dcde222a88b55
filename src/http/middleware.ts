import type { Context, Env, MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { HTTPException } from 'hono/http-exception';
import type { ZodError } from 'zod';
import { ApiError, errorBody, storageFullError } from './errors.ts';
import { hasScope, type Principal, type Scope } from './principal.ts';

/**
 * The variables every Versa app carries: its injected dependencies and the caller. On the path to
 * the first token they are read with `c.get(...)`: hono builds `c.var` anew (a copy of them all) at
 * every read.
 */
export type HttpEnv<Deps> = {
  Variables: {
    deps: Deps;
    /** The caller, from `Authorization: Bearer vsk_...`; null when absent or not a valid key. */
    principal: Principal | null;
  };
};
type WithPrincipal = { Variables: { principal: Principal | null } };

/**
 * Resolves the bearer key once per request with `authenticate`. Routes decide what an anonymous
 * caller gets (401); a key that is sent but unknown or revoked is refused here.
 */
export function principalMiddleware<E extends WithPrincipal & Env>(
  authenticate: (c: Context<E>, key: string) => Promise<Principal | null>,
): MiddlewareHandler<E> {
  return async (c, next) => {
    const header = c.req.header('authorization');
    const match = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    c.set('principal', match ? await authenticate(c, match[1]) : null);
    if (header && !c.get('principal')) throw new ApiError(401, 'invalid or revoked API key', 'invalid_api_key');
    await next();
  };
}

/**
 * A request that carries a body but no valid key is answered 401 from its headers, before any of
 * the body is read (or buffered, or checked): no route takes a body from an anonymous caller.
 * Runs after the principal middleware; where that did not run, the caller counts as anonymous.
 */
export function refuseKeylessBody<E extends WithPrincipal & Env>(): MiddlewareHandler<E> {
  return async (c, next) => {
    if (!c.get('principal') && carriesBody(c.req.raw)) principalOf(c);
    await next();
  };
}

/**
 * hono's bodyLimit, deciding from `content-length` alone when the request has one (and no
 * transfer-encoding): HTTP framing holds the body to that length. hono's own touches the body stream
 * first, which makes @hono/node-server build a web Request over the socket and give up reading the
 * body straight from it: about 0.5 ms of each generation request on the edge.
 */
export function limitBody<E extends Env>(options: {
  maxSize: number;
  onError: (c: Context<E>) => Response | Promise<Response>;
}): MiddlewareHandler<E> {
  const streamed = bodyLimit(options);
  return async (c, next) => {
    const length = c.req.header('content-length');
    if (length === undefined || c.req.header('transfer-encoding') !== undefined) return streamed(c, next);
    if (parseInt(length, 10) > options.maxSize) return options.onError(c);
    await next();
  };
}

function carriesBody(req: Request): boolean {
  const length = req.headers.get('content-length');
  if (length !== null) return length.trim() !== '0';
  return req.body !== null || req.headers.has('transfer-encoding');
}

/** 401 without a valid key; 403 unless the key has one of `scopes` (admin has them all). */
export function requireScope<E extends WithPrincipal & Env>(...scopes: Scope[]): MiddlewareHandler<E> {
  return async (c, next) => {
    principalOf(c, ...scopes);
    await next();
  };
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- any route's context (its path and input types)
export function principalOf<E extends WithPrincipal & Env>(c: Context<E, any, any>, ...scopes: Scope[]): Principal {
  const p = c.get('principal');
  if (!p) throw new ApiError(401, 'missing API key: send "Authorization: Bearer vsk_..."', 'missing_api_key');
  if (scopes.length && !scopes.some((s) => hasScope(p, s))) {
    throw new ApiError(
      403,
      `this key lacks the ${scopes.map((s) => `"${s}"`).join(' or ')} scope`,
      'insufficient_scope',
    );
  }
  return p;
}

/** Turns zod failures (path, query, body) into one 400 JSON error naming the first bad field. */
export function validationHook(
  result: { success: boolean; error?: unknown; target?: string },
  c: Context,
): Response | undefined {
  if (result.success) return undefined;
  const issues = (result.error as ZodError).issues ?? [];
  const issue = issues[0];
  const param = issue?.path?.length ? issue.path.join('.') : null;
  const where = result.target === 'param' ? 'path' : result.target === 'json' ? 'body' : result.target;
  const message = issue
    ? `${where ? `${where} ` : ''}${param ? `"${param}": ` : ''}${issue.message}`
    : 'invalid request';
  return c.json(errorBody(400, message, 'validation_error', param), 400);
}

/** The app's error handler: every failure leaves as OpenAI-shaped JSON, never HTML or a bare 500 for bad input. */
export function errorResponse(err: Error, c: Context): Response {
  if (err instanceof ApiError) return c.json(err.body, err.status);
  if (err instanceof HTTPException) {
    const status = err.status;
    const code =
      status === 415
        ? 'unsupported_media_type'
        : status === 413
          ? 'payload_too_large'
          : /json/i.test(err.message)
            ? 'invalid_json'
            : null;
    const message = /malformed json/i.test(err.message)
      ? 'malformed JSON in the request body'
      : err.message || 'invalid request';
    return c.json(errorBody(status, message, code), status);
  }
  const full = storageFullError(err);
  if (full) {
    console.error('versa: storage full:', err.message);
    return c.json(full.body, 507);
  }
  console.error('versa: unhandled error:', err);
  return c.json(errorBody(500, 'internal error', 'internal_error'), 500);
}

export function setWarning(c: Context, message: string): void {
  // Both: `Warning` is what generic HTTP tooling shows, x-versa-warning is easy to read from SDKs.
  c.header('Warning', `299 versa "${message.replace(/"/g, "'")}"`);
  c.header('x-versa-warning', message);
}
