import { createHash, timingSafeEqual } from 'node:crypto';
import { Hono, type Context } from 'hono';
import { errorBody } from '../http/errors.ts';
import {
  DetokenizeBody,
  TokenizeBody,
  type AdapterRef,
  type DetokenizeReply,
  type ReadyBody,
  type TokenizeReply,
} from '../protocol/compute.ts';
import { generate } from './generate.ts';
import { failure, holdAdapter, readBody, refuse } from './replies.ts';
import type { ComputeState } from './state.ts';

/** The compute node's HTTP surface (internal: the edge calls it); the protocol is src/protocol/compute.ts. */
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
      return refuse(
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

  app.post('/v1/internal/generate', (c) => generate(c, state));

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

  app.notFound((c) => refuse(c, 404, `no route ${c.req.method} ${c.req.path}`, 'not_found'));
  app.onError((e, c) => c.json(errorBody(500, e.message), 500));
  return app;
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
    const held = await holdAdapter(state, adapter);
    release = held.release;
    return await work(held.engineId);
  } catch (e) {
    return failure(c, state, e);
  } finally {
    release();
  }
}

/** Compares the bearer token in constant time (hashes first, so lengths leak nothing either). */
function tokenMatches(header: string | undefined, token: string): boolean {
  const sent = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '')?.[1] ?? '';
  const digest = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest(sent), digest(token)) && sent.length > 0;
}
