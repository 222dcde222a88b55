import { Hono, type Context } from 'hono';
import { errorBody } from '../http/errors.ts';
import { stream } from 'hono/streaming';
import { z } from 'zod';
import type { EngineClient, Generation } from '../engine/worker/client.ts';
import { RequestError, type GenerateRequest } from '../engine/generation/request.ts';
import { AdapterCache, IntegrityError, type AdapterRef } from './adapter-cache.ts';
import { BlobFetchError } from './blob-source.ts';
import type { ComputeMetrics } from './metrics.ts';

/**
 * The compute node's HTTP surface (internal: the edge calls it).
 *
 * POST /v1/internal/generate streams NDJSON, one object per line:
 *   {"type":"token","token":ID,"text":"...","logprob"?:X,"top"?:[{token,text,logprob}]}
 *   {"type":"done","finish_reason":"stop"|"length","usage":{prompt_tokens,completion_tokens},"timing":{ttft_ms,total_ms}}
 *   {"type":"error","error":{message,type,code}}            (after the first token only)
 * Failures before the first token are plain HTTP errors with an OpenAI-shaped JSON body, so the
 * edge can retry them on another node.
 */
export const GenerateBody = z
  .object({
    adapter: z
      .object({
        id: z.string().min(1),
        sha256: z.string().regex(/^[0-9a-f]{64}$/),
        files: z.array(z.object({ name: z.string().min(1), sha256: z.string().regex(/^[0-9a-f]{64}$/), bytes: z.number().int().nonnegative(), url: z.string().url().optional() })).min(1),
      })
      .nullish(),
    prompt: z.string().optional(),
    prompt_ids: z.array(z.number().int().nonnegative()).min(1).optional(),
    max_tokens: z.number().int().positive().optional(),
    temperature: z.number().nonnegative().optional(),
    top_p: z.number().gt(0).lte(1).optional(),
    top_k: z.number().int().nonnegative().optional(),
    seed: z.number().int().optional(),
    stop: z.array(z.string().min(1)).optional(),
    stop_token_ids: z.array(z.number().int().nonnegative()).optional(),
    ignore_eos: z.boolean().optional(),
    logprobs: z.number().int().min(0).max(20).optional(),
    /** Give up (and free the row) after this long. */
    deadline_ms: z.number().int().positive().optional(),
  })
  .strict();
export type GenerateBody = z.infer<typeof GenerateBody>;

export interface ComputeState {
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
const error = (c: Context, status: 400 | 404 | 422 | 429 | 502 | 503, message: string, code: string | null = null, param: string | null = null) =>
  c.json(errorBody(status, message, code, param), status);

export function createComputeApp(state: ComputeState): Hono {
  const app = new Hono();

  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  app.get('/readyz', (c) => (state.draining ? c.json({ status: 'draining' }, 503) : c.json({ status: 'ready', model: state.engine.info.architecture })));
  app.get('/metrics', async (c) => c.text(await state.metrics.registry.metrics(), 200, { 'content-type': state.metrics.registry.contentType }));
  app.get('/v1/internal/info', (c) =>
    c.json({ model: state.engine.info, inflight: state.inflight, capacity: state.capacity, adapter_cache_bytes: state.cache.bytes }),
  );

  app.post('/v1/internal/generate', async (c) => {
    if (state.draining) return error(c, 503, 'this node is shutting down', 'draining');
    if (!c.req.header('content-type')?.includes('application/json')) return error(c, 400, 'expected a JSON body (content-type: application/json)');
    let json: unknown;
    try {
      json = await c.req.json();
    } catch {
      return error(c, 400, 'the body is not valid JSON');
    }
    const parsed = GenerateBody.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      return error(c, 400, `${issue.path.join('.') || 'body'}: ${issue.message}`, undefined, issue.path.join('.'));
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
        const held = await state.cache.acquire(body.adapter as AdapterRef);
        release = held.release;
        adapterId = held.engineId;
      }
      generation = state.engine.generate(toRequest(body, adapterId));
    } catch (e) {
      settle();
      return failure(c, state, e);
    }
    const label = body.adapter?.id ?? 'base';
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
    let first: IteratorResult<unknown>;
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
      const line = (o: object) => out.write(`${JSON.stringify(o)}\n`);
      try {
        for (let next = first; !next.done; next = await iterator.next()) {
          const e = next.value as { token: number; text: string; logprob?: number; top?: unknown };
          const now = performance.now();
          if (tokens++ > 0) state.metrics.interToken.observe({ adapter: label }, (now - last) / 1000);
          last = now;
          await line({ type: 'token', token: e.token, text: e.text, ...(e.logprob !== undefined ? { logprob: e.logprob, top: e.top } : {}) });
        }
        const r = await gen.result;
        state.metrics.tokens.inc({ adapter: label }, r.completionTokens);
        if (timedOut) {
          state.metrics.requests.inc({ outcome: 'deadline' });
          await line({ type: 'error', error: { message: 'the request ran past its deadline', type: 'timeout', code: 'deadline_exceeded' } });
        } else {
          state.metrics.requests.inc({ outcome: r.finishReason === 'cancelled' ? 'cancelled' : 'ok' });
          await line({
            type: 'done',
            finish_reason: r.finishReason,
            usage: { prompt_tokens: r.promptTokens, completion_tokens: r.completionTokens },
            timing: { ttft_ms: round(ttft), total_ms: round(performance.now() - started) },
          });
        }
      } catch (e) {
        state.metrics.requests.inc({ outcome: 'error' });
        await line({ type: 'error', error: { message: (e as Error).message, type: 'server_error', code: 'engine_error' } }).catch(() => {});
      } finally {
        clearTimeout(deadline);
        c.req.raw.signal.removeEventListener('abort', abort);
        settle();
      }
    });
  });

  app.notFound((c) => error(c, 404, `no route ${c.req.method} ${c.req.path}`, 'not_found'));
  app.onError((e, c) => c.json(errorBody(500, e.message), 500));
  return app;
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

function toRequest(b: GenerateBody, adapter: string | undefined): GenerateRequest {
  return {
    prompt: b.prompt,
    promptIds: b.prompt_ids,
    adapter,
    maxTokens: b.max_tokens,
    temperature: b.temperature,
    topP: b.top_p,
    topK: b.top_k,
    seed: b.seed,
    stop: b.stop,
    stopTokenIds: b.stop_token_ids,
    ignoreEos: b.ignore_eos,
    logprobs: b.logprobs,
  };
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}
