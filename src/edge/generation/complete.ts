import type { Context } from 'hono';
import { stream } from 'hono/streaming';
import type { AppEnv } from '../../../registry/http.ts';
import { setWarning } from '../../http/middleware.ts';
import { ApiError, type ErrorStatus } from '../../http/errors.ts';
import { appendEvents, type EventInput } from '../../../registry/queries/events.ts';
import type { Principal } from '../../http/principal.ts';
import { ComputeError, generateOnPool } from '../routing/compute-client.ts';
import type { ComputeEvent, GenerateBody } from '../../protocol/compute.ts';
import { chat, chatLogprobs, completionLogprobs, text, usage, type FinishReason, type Identity } from '../openai/format.ts';
import type { GenerationContext } from './context.ts';
import type { Target } from './resolve.ts';
import { formatRef } from '../../../registry/names.ts';

type TokenEvent = Extract<ComputeEvent, { type: 'token' }>;

/** One completion to run, from a chat or a completions request. */
export interface CompletionJob {
  kind: 'chat' | 'text';
  model: string;
  target: Target;
  principal: Principal;
  input: { prompt: string } | { prompt_ids: number[] };
  maxTokens?: number;
  temperature?: number | null;
  topP?: number | null;
  seed?: number | null;
  stop?: string | string[] | null;
  /** Alternatives per token when logprobs are asked for; undefined = none. */
  logprobs?: number;
  stream: boolean;
  includeUsage: boolean;
}

/**
 * Runs a completion on the compute tier and answers in OpenAI's shape, streamed (SSE) or whole.
 * Failures before the first token are HTTP errors (after failover across nodes); after it, an
 * SSE `data: {"error": ...}` chunk ends the stream. Exposure and usage events are written after
 * the response is on its way (waitUntil on Workers).
 */
export async function complete(c: Context<AppEnv>, gen: GenerationContext, job: CompletionJob): Promise<Response> {
  const { target } = job;
  const maxTokens = job.maxTokens ?? (job.kind === 'chat' ? gen.config.maxTokens : 16);
  if (maxTokens > gen.config.maxTokens) {
    throw new ApiError(400, `max_tokens ${maxTokens} is over this deployment's limit of ${gen.config.maxTokens}`, 'max_tokens_too_large', 'max_tokens');
  }
  const pool = gen.pools.for(target.base.name);
  if (!pool.urls.length) throw new ApiError(503, `no compute node is configured for base model "${target.base.name}"`, 'no_compute_nodes');

  const who: Identity = { id: `${job.kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${crypto.randomUUID().replace(/-/g, '')}`, created: Math.floor(Date.now() / 1000), model: job.model };
  const origin = gen.config.publicUrl ?? new URL(c.req.url).origin;
  const a = target.adapter;
  const request: GenerateBody = {
    ...job.input,
    adapter: a && {
      id: formatRef(a.name, a.version),
      sha256: a.sha256,
      files: a.files.map((f) => ({ ...f, url: `${origin}/v1/adapters/${a.name}/versions/${a.version}/files/${encodeURIComponent(f.name)}` })),
    },
    max_tokens: maxTokens,
    temperature: job.temperature ?? 1,
    top_p: job.topP ?? undefined,
    seed: job.seed ?? undefined,
    stop: typeof job.stop === 'string' ? [job.stop] : job.stop ?? undefined,
    logprobs: job.logprobs,
    deadline_ms: gen.config.deadlineMs,
  };

  headers(c, target);
  const base: Omit<EventInput, 'type'> = {
    tenantId: job.principal.tenantId, keyId: job.principal.keyId, adapter: a?.name ?? null, adapterVersion: a?.version ?? null,
    base: target.base.name, experimentId: target.experiment?.id ?? null, arm: target.experiment?.arm ?? null,
    unit: target.experiment?.unit ?? null, completionId: who.id,
  };
  const record = (events: EventInput[]) => gen.defer(c, appendEvents(c.var.deps.registry, events));
  if (target.experiment) record([{ ...base, type: 'exposure' }]);

  const started = Date.now();
  let ttft = 0;
  const finish = (tokens: { prompt: number; completion: number }, data: Record<string, unknown>) =>
    record([{ ...base, type: 'usage', data: { prompt_tokens: tokens.prompt, completion_tokens: tokens.completion, ttft_ms: ttft, total_ms: Date.now() - started, stream: job.stream, ...data } }]);

  const events = generateOnPool(pool, a ? formatRef(a.name, a.version) : target.base.name, request, c.req.raw.signal);
  let first: IteratorResult<ComputeEvent & { node?: string }>;
  try {
    first = await events.next();
  } catch (e) {
    const error = toApiError(e);
    finish({ prompt: 0, completion: 0 }, { error: error.code ?? 'error', status: error.status });
    throw error;
  }
  ttft = Date.now() - started;
  const node = first.value?.node;

  if (!job.stream) {
    const tokens: TokenEvent[] = [];
    let end: ComputeEvent | undefined;
    for (let next = first; !next.done; next = await events.next()) {
      if (next.value.type === 'token') tokens.push(next.value);
      else end = next.value;
    }
    if (!end || end.type === 'error') {
      const message = end?.type === 'error' ? end.error.message : 'the compute node ended without a result';
      finish({ prompt: 0, completion: tokens.length }, { error: end?.type === 'error' ? end.error.code : 'incomplete', node });
      throw new ApiError(502, message, end?.type === 'error' ? (end.error.code ?? 'compute_error') : 'compute_incomplete');
    }
    if (end.type !== 'done') throw new ApiError(502, 'unexpected end of generation', 'compute_incomplete');
    const u = usage(end.usage.prompt_tokens, end.usage.completion_tokens);
    const reason = finishReason(end.finish_reason);
    const content = tokens.map((t) => t.text).join('');
    finish({ prompt: u.prompt_tokens, completion: u.completion_tokens }, { finish_reason: reason, node });
    const lp = job.logprobs === undefined ? null : job.kind === 'chat' ? chatLogprobs(tokens, job.logprobs) : completionLogprobs(tokens, job.logprobs);
    return c.json(job.kind === 'chat' ? chat.completion(who, content, reason, u, lp) : text.completion(who, content, reason, u, lp));
  }

  c.header('content-type', 'text/event-stream; charset=utf-8');
  c.header('cache-control', 'no-cache');
  c.header('x-accel-buffering', 'no');
  return stream(c, async (out) => {
    const send = (data: unknown) => out.write(`data: ${JSON.stringify(data)}\n\n`);
    const withUsage = <T extends object>(chunk: T) => (job.includeUsage ? { ...chunk, usage: null } : chunk);
    let completion = 0;
    let offset = 0;
    try {
      if (job.kind === 'chat') await send(withUsage(chat.chunk(who, { role: 'assistant', content: '' }, null)));
      for (let next = first; !next.done; next = await events.next()) {
        const e = next.value;
        if (e.type === 'token') {
          completion++;
          if (!e.text && job.logprobs === undefined) continue;
          if (job.kind === 'chat') {
            await send(withUsage(chat.chunk(who, { content: e.text }, null, job.logprobs === undefined ? null : chatLogprobs([e], job.logprobs))));
          } else {
            await send(withUsage(text.chunk(who, e.text, null, job.logprobs === undefined ? null : completionLogprobs([e], job.logprobs, offset))));
          }
          offset += e.text.length;
        } else if (e.type === 'done') {
          const reason = finishReason(e.finish_reason);
          await send(withUsage(job.kind === 'chat' ? chat.chunk(who, {}, reason) : text.chunk(who, '', reason)));
          const u = usage(e.usage.prompt_tokens, e.usage.completion_tokens);
          if (job.includeUsage) await send(job.kind === 'chat' ? chat.usageChunk(who, u) : text.usageChunk(who, u));
          await out.write('data: [DONE]\n\n');
          finish({ prompt: u.prompt_tokens, completion: u.completion_tokens }, { finish_reason: reason, node });
          return;
        } else {
          await send({ error: { message: e.error.message, type: e.error.type, param: null, code: e.error.code ?? null } });
          finish({ prompt: 0, completion }, { error: e.error.code ?? 'compute_error', node });
          return;
        }
      }
      await send({ error: { message: 'the compute node ended the stream early', type: 'server_error', param: null, code: 'compute_stream_broken' } });
      finish({ prompt: 0, completion }, { error: 'compute_stream_broken', node });
    } catch (e) {
      // The client went away (or the connection broke): nothing left to tell it.
      finish({ prompt: 0, completion }, { error: 'client_disconnected', node });
      void e;
    }
  });
}

function headers(c: Context<AppEnv>, t: Target): void {
  c.header('x-versa-base', formatRef(t.base.name, t.base.version));
  if (t.adapter) {
    c.header('x-versa-adapter', t.adapter.name);
    c.header('x-versa-adapter-version', String(t.adapter.version));
    c.header('x-versa-resolved-via', t.adapter.via);
  }
  if (t.experiment) {
    c.header('x-versa-experiment', t.experiment.id);
    c.header('x-versa-arm', t.experiment.arm);
  }
  if (t.warning) setWarning(c, t.warning);
}

function finishReason(r: string): FinishReason {
  return r === 'stop' ? 'stop' : 'length';
}

function toApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  if (e instanceof ComputeError) {
    const status = ([400, 404, 409, 410, 413, 422, 429, 502, 503, 504] as const).includes(e.status as never) ? (e.status as ErrorStatus) : 502;
    return new ApiError(status, e.message, e.code, e.param);
  }
  return new ApiError(502, `the compute tier failed: ${(e as Error).message}`, 'compute_error');
}
