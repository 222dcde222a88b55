import { createHash, timingSafeEqual } from 'node:crypto';
import { Hono, type Context } from 'hono';
import { errorBody } from '../http/errors.ts';
import { stream } from 'hono/streaming';
import type { EngineClient, Generation } from '../engine/worker/client.ts';
import { RequestError, validateRequest } from '../engine/generation/request.ts';
import type { z } from 'zod';
import {
  describeIssue,
  DetokenizeBody,
  eventLine,
  GenerateBody,
  toEngineRequest,
  TokenizeBody,
  type AdapterRef,
  type ComputeEvent,
  type DetokenizeReply,
  type NodeBase,
  type ReadyBody,
  type TokenizeReply,
} from '../protocol/compute.ts';
import { AdapterCache, IntegrityError } from './adapter-cache.ts';
import { BlobFetchError } from './blob-source.ts';
import type { ComputeMetrics } from './metrics.ts';

/** The compute node's HTTP surface (internal: the edge calls it); the protocol is src/protocol/compute.ts. */
export interface ComputeState {
  /** The bearer token every caller but a health check must send (the edge's). */
  token: string;
  /** The base this node serves: its files' sha256 (as the registry computes it), and its name if given. */
  base: NodeBase;
  engine: EngineClient;
  cache: AdapterCache;
  metrics: ComputeMetrics;
  /** Requests admitted (running or queued in the engine) at most; beyond, 429. */
  capacity: number;
  inflight: number;
  draining: boolean;
  defaultDeadlineMs: number;
  /** Settles when no request is in flight (for graceful shutdown). */
  idle(): Promise<void>;
  onSettled(): void;
}

/** Errors in the product's one shape (OpenAI's), as the edge passes them on. */
const error = (
  c: Context,
  status: 400 | 401 | 404 | 409 | 422 | 429 | 502 | 503,
  message: string,
  code: string | null = null,
  param: string | null = null,
) => c.json(errorBody(status, message, code, param), status);

export function createComputeApp(state: ComputeState): Hono {
  const app = new Hono();

  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  app.get('/readyz', (c) =>
    state.draining
      ? c.json({ status: 'draining' }, 503)
      : c.json({ status: 'ready', base: state.base, architecture: state.engine.info.architecture } satisfies ReadyBody),
  );
  // Everything else is the edge's: metrics and info name tenants' adapters, generate spends compute.
  app.use('*', async (c, next) => {
    if (!tokenMatches(c.req.header('authorization'), state.token)) {
      return error(
        c,
        401,
        'this compute node needs its token: "Authorization: Bearer <VERSA_COMPUTE_TOKEN>"',
        'invalid_compute_token',
      );
    }
    await next();
  });
  app.get('/metrics', async (c) =>
    c.text(await state.metrics.registry.metrics(), 200, { 'content-type': state.metrics.registry.contentType }),
  );
  app.get('/v1/internal/info', (c) =>
    c.json({
      base: state.base,
      model: state.engine.info,
      inflight: state.inflight,
      capacity: state.capacity,
      adapter_cache_bytes: state.cache.bytes,
    }),
  );

  app.post('/v1/internal/generate', async (c) => {
    if (state.draining) {
      c.header('retry-after', '1'); // another node (or this one, restarted) can take it
      return error(c, 503, 'this node is shutting down: send the request to another node', 'draining');
    }
    const parsed = await readBody(c, state, GenerateBody);
    if (parsed instanceof Response) return parsed;
    try {
      validateRequest(toEngineRequest(parsed.data)); // before an adapter is fetched for it
    } catch (e) {
      return failure(c, state, e);
    }
    if (state.inflight >= state.capacity) {
      state.metrics.requests.inc({ outcome: 'rejected_busy' });
      c.header('retry-after', '1');
      return error(c, 429, `this node is at capacity (${state.capacity} requests)`, 'overloaded');
    }
    const body = parsed.data;
    const started = performance.now();
    state.inflight++;
    let release = () => {};
    let generation: Generation | undefined;
    const settle = () => {
      release();
      state.inflight--;
      state.onSettled();
    };
    try {
      let adapterId: string | undefined;
      if (body.adapter) {
        const held = await state.cache.acquire(body.adapter);
        release = held.release;
        adapterId = held.engineId;
      }
      generation = state.engine.generate(toEngineRequest(body, adapterId));
    } catch (e) {
      settle();
      return failure(c, state, e);
    }
    const label = body.adapter ? state.metrics.adapterLabel(body.adapter.id) : 'base';
    const gen = generation;
    const abort = () => gen.cancel();
    c.req.raw.signal.addEventListener('abort', abort);
    let timedOut = false;
    const deadline = setTimeout(() => {
      timedOut = true;
      gen.cancel();
    }, body.deadline_ms ?? state.defaultDeadlineMs);
    const iterator = gen[Symbol.asyncIterator]();
    // Wait for the first token, so that failures before it are HTTP errors the edge can retry.
    let first: Awaited<ReturnType<typeof iterator.next>>;
    try {
      first = await iterator.next();
    } catch (e) {
      clearTimeout(deadline);
      settle();
      return failure(c, state, e);
    }
    const ttft = performance.now() - started;
    state.metrics.ttft.observe({ adapter: label }, ttft / 1000);
    c.header('content-type', 'application/x-ndjson');
    c.header('x-versa-adapter-cache', body.adapter ? 'resident' : 'none');
    return stream(c, async (out) => {
      out.onAbort(abort);
      let last = performance.now();
      let tokens = 0;
      const line = (e: ComputeEvent) => out.write(eventLine(e));
      try {
        for (let next = first; !next.done; next = await iterator.next()) {
          const e = next.value;
          const now = performance.now();
          if (tokens++ > 0) state.metrics.interToken.observe({ adapter: label }, (now - last) / 1000);
          last = now;
          await line({
            type: 'token',
            token: e.token,
            text: e.text,
            ...(e.logprob !== undefined ? { logprob: e.logprob, top: e.top } : {}),
          });
        }
        const r = await gen.result;
        state.metrics.tokens.inc({ adapter: label }, r.completionTokens);
        if (timedOut) {
          state.metrics.requests.inc({ outcome: 'deadline' });
          await line({
            type: 'error',
            error: { message: 'the request ran past its deadline', type: 'timeout', code: 'deadline_exceeded' },
          });
        } else if (r.finishReason === 'cancelled') {
          // Cut short (the node is draining past its deadline, or the caller left): never a "done".
          state.metrics.requests.inc({ outcome: 'cancelled' });
          const message = state.draining
            ? 'the compute node shut down before the generation finished'
            : 'the generation was cancelled';
          await line({ type: 'error', error: { message, type: 'server_error', code: 'generation_cancelled' } });
        } else {
          state.metrics.requests.inc({ outcome: 'ok' });
          await line({
            type: 'done',
            finish_reason: r.finishReason,
            usage: { prompt_tokens: r.promptTokens, completion_tokens: r.completionTokens },
            timing: { ttft_ms: round(ttft), total_ms: round(performance.now() - started) },
          });
        }
      } catch (e) {
        state.metrics.requests.inc({ outcome: 'error' });
        await line({
          type: 'error',
          error: { message: (e as Error).message, type: 'server_error', code: 'engine_error' },
        }).catch(() => {});
      } finally {
        clearTimeout(deadline);
        c.req.raw.signal.removeEventListener('abort', abort);
        settle();
      }
    });
  });

  // vLLM's /tokenize and /detokenize for the edge: with the request's adapter, so task tokens count.
  app.post('/v1/internal/tokenize', async (c) => {
    const parsed = await readBody(c, state, TokenizeBody);
    if (parsed instanceof Response) return parsed;
    const { adapter, prompt } = parsed.data;
    const tokens = await withAdapter(c, state, adapter, (id) => state.engine.tokenize(prompt, id));
    if (tokens instanceof Response) return tokens;
    const maxModelLen = state.engine.info.config.maxPositions;
    return c.json({ tokens, count: tokens.length, max_model_len: maxModelLen } satisfies TokenizeReply);
  });
  app.post('/v1/internal/detokenize', async (c) => {
    const parsed = await readBody(c, state, DetokenizeBody);
    if (parsed instanceof Response) return parsed;
    const { adapter, tokens } = parsed.data;
    const text = await withAdapter(c, state, adapter, (id) => state.engine.detokenize(tokens, id));
    if (text instanceof Response) return text;
    return c.json({ prompt: text } satisfies DetokenizeReply);
  });

  app.notFound((c) => error(c, 404, `no route ${c.req.method} ${c.req.path}`, 'not_found'));
  app.onError((e, c) => c.json(errorBody(500, e.message), 500));
  return app;
}

/**
 * A request's JSON body checked against its schema, or the 4xx that refuses it: not JSON, not
 * UTF-8, the wrong shape, or meant for another base (409 base_mismatch: the edge tries another node).
 */
async function readBody<T extends { base?: { id?: string; sha256: string } }>(
  c: Context,
  state: ComputeState,
  schema: z.ZodType<T>,
): Promise<{ data: T } | Response> {
  if (!c.req.header('content-type')?.includes('application/json'))
    return error(c, 400, 'expected a JSON body (content-type: application/json)');
  let text: string;
  try {
    // Bad bytes would become U+FFFD silently (and a prompt the edge never sent): refused instead.
    text = new TextDecoder('utf-8', { fatal: true }).decode(await c.req.arrayBuffer());
  } catch {
    return error(c, 400, 'the body is not valid UTF-8', 'invalid_encoding');
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return error(c, 400, 'the body is not valid JSON');
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const { message, param } = describeIssue(parsed.error);
    return error(c, 400, message, 'validation_error', param);
  }
  const asked = parsed.data.base;
  if (asked && asked.sha256 !== state.base.sha256) {
    state.metrics.requests.inc({ outcome: 'base_mismatch' });
    const wanted = describeBase({ name: asked.id, sha256: asked.sha256 });
    return error(c, 409, `this node serves ${describeBase(state.base)}, not ${wanted}`, 'base_mismatch', 'base');
  }
  return { data: parsed.data };
}

/** Runs `work` with the adapter resident (fetched into the cache if need be), or answers why it cannot. */
async function withAdapter<T>(
  c: Context,
  state: ComputeState,
  adapter: AdapterRef | null | undefined,
  work: (engineId: string | undefined) => Promise<T>,
): Promise<T | Response> {
  let release = () => {};
  try {
    let engineId: string | undefined;
    if (adapter) {
      const held = await state.cache.acquire(adapter);
      release = held.release;
      engineId = held.engineId;
    }
    return await work(engineId);
  } catch (e) {
    return failure(c, state, e);
  } finally {
    release();
  }
}

function failure(c: Context, state: ComputeState, e: unknown): Response {
  if (e instanceof RequestError) {
    state.metrics.requests.inc({ outcome: 'invalid' });
    return error(c, 400, e.message, undefined, e.param);
  }
  if (e instanceof IntegrityError) {
    state.metrics.requests.inc({ outcome: 'adapter_refused' });
    return error(c, 422, e.message, 'adapter_integrity');
  }
  if (e instanceof BlobFetchError) {
    state.metrics.requests.inc({ outcome: 'adapter_unavailable' });
    return error(c, 502, e.message, 'adapter_unavailable');
  }
  if (e instanceof Error && e.name === 'AdapterFormatError') {
    state.metrics.requests.inc({ outcome: 'adapter_refused' });
    return error(c, 422, e.message, 'adapter_invalid');
  }
  throw e;
}

/** Compares the bearer token in constant time (hashes first, so lengths leak nothing either). */
function tokenMatches(header: string | undefined, token: string): boolean {
  const sent = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '')?.[1] ?? '';
  const digest = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest(sent), digest(token)) && sent.length > 0;
}

/** A base for messages: `stories260k@1 (sha256 1f2e3d4c5b6a...)`, or its sha256 alone. */
export function describeBase(base: NodeBase): string {
  const name = base.name ? `${base.name}${base.version ? `@${base.version}` : ''} ` : '';
  return `${name}(sha256 ${base.sha256.slice(0, 12)}...)`;
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}
