import type { Context } from 'hono';
import { stream } from 'hono/streaming';
import type { StreamingApi } from 'hono/utils/stream';
import { validateRequest, type GenerateResult, type TokenEvent } from '../engine/generation/request.ts';
import type { Generation } from '../engine/worker/client.ts';
import { eventLine, GenerateBody, toEngineRequest, type ComputeEvent } from '../protocol/compute.ts';
import { failure, holdAdapter, readBody, refuse } from './replies.ts';
import type { ComputeState } from './state.ts';

/**
 * POST /v1/internal/generate: the request is admitted, started, and its first token awaited, so
 * that failures before it are HTTP errors the edge can retry; then its events stream as NDJSON.
 */
export async function generate(c: Context, state: ComputeState): Promise<Response> {
  const body = await admit(c, state);
  if (body instanceof Response) return body;
  const run = await start(c, state, body);
  if (run instanceof Response) return run;
  let first: IteratorResult<TokenEvent>;
  try {
    first = await run.tokens.next();
  } catch (e) {
    run.finish();
    return failure(c, state, e);
  }
  const ttft = performance.now() - run.started;
  state.metrics.ttft.observe({ adapter: run.label }, ttft / 1000);
  c.header('content-type', 'application/x-ndjson');
  c.header('x-versa-adapter-cache', body.adapter ? 'resident' : 'none');
  return stream(c, (out) => streamEvents(out, state, run, first, ttft));
}

/** The request's body, or why this node refuses it now: draining, invalid, or at capacity. */
async function admit(c: Context, state: ComputeState): Promise<GenerateBody | Response> {
  if (state.draining) {
    c.header('retry-after', '1'); // another node (or this one, restarted) can take it
    return refuse(c, 503, 'this node is shutting down: send the request to another node', 'draining');
  }
  const parsed = await readBody(c, state, GenerateBody);
  if (parsed instanceof Response) return parsed;
  try {
    validateRequest(toEngineRequest(parsed.data)); // before an adapter is fetched for it
  } catch (e) {
    return failure(c, state, e);
  }
  // Each of the n choices takes a row: n counts against the capacity.
  if (state.inflight + (parsed.data.n ?? 1) > state.capacity) {
    state.metrics.requests.inc({ outcome: 'rejected_busy' });
    c.header('retry-after', '1');
    return refuse(c, 429, `this node is at capacity (${state.capacity} requests)`, 'overloaded');
  }
  return parsed.data;
}

/** A generation running on this node, from its admission to its last event. */
interface Running {
  readonly body: GenerateBody;
  readonly generation: Generation;
  readonly tokens: AsyncIterator<TokenEvent>;
  /** The metrics label: the adapter's, or "base". */
  readonly label: string;
  readonly started: number;
  /** Whether the deadline cut it short. */
  readonly timedOut: boolean;
  cancel(): void;
  /** Stops watching the deadline and the caller, and frees the request's slot and adapter: once, at the end. */
  finish(): void;
}

/** Takes a slot, makes the adapter resident and starts the engine; cancelled if the caller leaves or time runs out. */
async function start(c: Context, state: ComputeState, body: GenerateBody): Promise<Running | Response> {
  const started = performance.now();
  const rows = body.n ?? 1;
  state.inflight += rows;
  let release = () => {};
  const settle = () => {
    release();
    state.inflight -= rows;
    state.onSettled();
  };
  let generation: Generation;
  try {
    const adapter = await holdAdapter(state, body.adapter);
    release = adapter.release;
    generation = state.engine.generate(toEngineRequest(body, adapter.engineId));
  } catch (e) {
    settle();
    return failure(c, state, e);
  }
  const cancel = () => generation.cancel();
  const signal = c.req.raw.signal;
  signal.addEventListener('abort', cancel);
  let timedOut = false;
  const deadline = setTimeout(() => {
    timedOut = true;
    generation.cancel();
  }, body.deadline_ms ?? state.defaultDeadlineMs);
  return {
    body,
    generation,
    tokens: generation[Symbol.asyncIterator](),
    label: body.adapter ? state.metrics.adapterLabel(body.adapter.id) : 'base',
    started,
    get timedOut() {
      return timedOut;
    },
    cancel,
    finish() {
      clearTimeout(deadline);
      signal.removeEventListener('abort', cancel);
      settle();
    },
  };
}

/** Writes a token event per token, then how the generation ended: `done`, or an `error` event. */
async function streamEvents(
  out: StreamingApi,
  state: ComputeState,
  run: Running,
  first: IteratorResult<TokenEvent>,
  ttft: number,
): Promise<void> {
  out.onAbort(run.cancel);
  const send = (e: ComputeEvent) => out.write(eventLine(e));
  let last = performance.now();
  let tokens = 0;
  try {
    for (let next = first; !next.done; next = await run.tokens.next()) {
      const e = next.value;
      const now = performance.now();
      if (tokens++ > 0) state.metrics.interToken.observe({ adapter: run.label }, (now - last) / 1000);
      last = now;
      await send({
        type: 'token',
        token: e.token,
        text: e.text,
        ...(e.logprob !== undefined ? { logprob: e.logprob, top: e.top } : {}),
        ...(e.index ? { index: e.index } : {}),
        ...(e.finish && { finish_reason: e.finish }),
      });
    }
    const result = await run.generation.result;
    state.metrics.tokens.inc({ adapter: run.label }, result.completionTokens);
    const { outcome, event } = ending(state, run, result, ttft);
    state.metrics.requests.inc({ outcome });
    await send(event);
  } catch (e) {
    state.metrics.requests.inc({ outcome: 'error' });
    await send({
      type: 'error',
      error: { message: (e as Error).message, type: 'server_error', code: 'engine_error' },
    }).catch(() => {});
  } finally {
    run.finish();
  }
}

/** The last event of a generation that ran out its tokens, and its outcome for the metrics. */
function ending(
  state: ComputeState,
  run: Running,
  r: GenerateResult,
  ttft: number,
): { outcome: string; event: ComputeEvent } {
  if (run.timedOut) {
    const error = { message: 'the request ran past its deadline', type: 'timeout', code: 'deadline_exceeded' };
    return { outcome: 'deadline', event: { type: 'error', error } };
  }
  if (r.finishReason === 'cancelled') {
    // Cut short (the node is draining past its deadline, or the caller left): never a "done".
    const message = state.draining
      ? 'the compute node shut down before the generation finished'
      : 'the generation was cancelled';
    return {
      outcome: 'cancelled',
      event: { type: 'error', error: { message, type: 'server_error', code: 'generation_cancelled' } },
    };
  }
  return {
    outcome: 'ok',
    event: {
      type: 'done',
      finish_reason: r.finishReason,
      usage: { prompt_tokens: r.promptTokens, completion_tokens: r.completionTokens },
      timing: { ttft_ms: round(ttft), total_ms: round(performance.now() - run.started) },
      ...(r.choices && {
        choices: r.choices.map((c) => ({
          index: c.index,
          finish_reason: c.finishReason,
          completion_tokens: c.completionTokens,
        })),
      }),
    },
  };
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}
