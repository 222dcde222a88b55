import type { Context, MiddlewareHandler } from 'hono';
import type { AppEnv } from '../env.ts';
import { isOperator } from '../../http/principal.ts';

/**
 * Where a generation's time goes before its first token, as a `Server-Timing` header (milliseconds):
 * auth (key -> principal), parse (the body read, checked as UTF-8, parsed and validated), resolve
 * (model string -> version and arm), template (chat rendering), route (node choice), node (the
 * request to the node until its first token is read), edge (the sum of the edge's own phases) and
 * total (the request's arrival to the response's headers). Event writes are not on this path: they
 * start after the first token.
 */
export const PHASES = ['auth', 'parse', 'resolve', 'template', 'route', 'node'] as const;
export type Phase = (typeof PHASES)[number];

/** The request header that asks for the breakdown ("1"); honoured for operator keys only. */
export const TIMING_HEADER = 'x-versa-timing';

// Per request (its Context: the body limit may replace c.req.raw), only when asked: a WeakMap keeps
// the app's variables (AppEnv) untouched.
const timings = new WeakMap<Context, Map<Phase, number>>();
// When a timed middleware handed on: where the phase that sinceHandedOn() closes began.
const handedOn = new WeakMap<Context, number>();

/**
 * Collects the phases of a request that asks for them and answers them in `Server-Timing`, for an
 * operator key only: the times say how warm the edge's caches are and how busy its nodes, which
 * other tenants' traffic decides.
 */
export function serverTiming(): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    if (c.req.header(TIMING_HEADER) !== '1') return next();
    const phases = new Map<Phase, number>();
    timings.set(c, phases);
    const start = performance.now();
    await next();
    if (!isOperator(c.get('principal'))) return;
    const total = performance.now() - start;
    const edge = [...phases].reduce((sum, [phase, ms]) => (phase === 'node' ? sum : sum + ms), 0);
    const entries: Array<[string, number]> = PHASES.filter((p) => phases.has(p)).map((p) => [p, phases.get(p)!]);
    entries.push(['edge', edge], ['total', total]);
    c.res.headers.set('server-timing', entries.map(([name, ms]) => `${name};dur=${ms.toFixed(2)}`).join(', '));
  };
}

/**
 * Runs `work` and adds its time to `phase` of this request (when the request asked for timings):
 * a promise counts until it settles.
 */
export function timed<T>(c: Context, phase: Phase, work: () => T): T {
  const phases = timings.get(c);
  if (!phases) return work();
  const start = performance.now();
  const record = () => phases.set(phase, (phases.get(phase) ?? 0) + performance.now() - start);
  let result: T;
  try {
    result = work();
  } catch (e) {
    record();
    throw e;
  }
  if (!(result instanceof Promise)) {
    record();
    return result;
  }
  return result.finally(record) as T;
}

/** A middleware timed as `phase` until it hands on to the next one (the principal's lookup: auth). */
export function timedMiddleware(phase: Phase, middleware: MiddlewareHandler<AppEnv>): MiddlewareHandler<AppEnv> {
  return (c, next) => {
    const phases = timings.get(c);
    if (!phases) return middleware(c, next);
    const start = performance.now();
    return middleware(c, () => {
      const now = performance.now();
      phases.set(phase, (phases.get(phase) ?? 0) + now - start);
      handedOn.set(c, now);
      return next();
    });
  };
}

/**
 * Adds the time since the last timed middleware handed on to `phase` (the handler calls it once its
 * body is valid: parse then covers the middlewares and validation between the key's lookup and it).
 */
export function sinceHandedOn(c: Context, phase: Phase): void {
  const phases = timings.get(c);
  const start = handedOn.get(c);
  if (!phases || start === undefined) return;
  phases.set(phase, (phases.get(phase) ?? 0) + performance.now() - start);
}
