import type { Context } from 'hono';
import type { AppEnv } from '../env.ts';
import { usageRecorder, type RecorderContext } from '../../experiments/recorder.ts';
import { formatRef } from '../../../registry/names.ts';
import { setWarning } from '../../http/middleware.ts';
import { ApiError, errorBody } from '../../http/errors.ts';
import { sseResponse, type SseWriter } from '../../http/sse.ts';
import type { Principal } from '../../http/principal.ts';
import type { ComputeEvent, GenerateBody } from '../../protocol/compute.ts';
import { ComputeError, generateOnPool, toApiError } from '../routing/compute-client.ts';
import {
  FORMATS,
  usage as usageOf,
  type ChoiceOutput,
  type Identity,
  type OpenAIFinishReason,
  type ResponseFormat,
} from '../openai/format.ts';
import type { Penalties } from '../openai/schemas.ts';
import { refsOf } from '../openai/tokenize.ts';
import type { GenerationContext } from './context.ts';
import { timed } from './timing.ts';
import type { Target } from './resolve.ts';
import { choicesOf, mergePrompts } from './choices.ts';

type TokenEvent = Extract<ComputeEvent, { type: 'token' }>;
type NodeEvents = AsyncGenerator<ComputeEvent & { node?: string }>;

/** One completion to run, from a chat or a completions request. */
export interface CompletionJob {
  kind: 'chat' | 'text';
  /** The completion's id (newCompletionId): known before resolution, as a per-request unit. */
  id: string;
  model: string;
  target: Target;
  principal: Principal;
  /** The prompts: one, or a completions request's list (each runs n choices). */
  inputs: Array<{ prompt: string } | { prompt_ids: number[] }>;
  /** Choices per prompt (OpenAI's n), sharing the prompt's prefill on the node. */
  n: number;
  /** Completions' echo: each prompt's text, put before its choices' text. */
  echo?: string[];
  maxTokens?: number;
  temperature?: number | null;
  topP?: number | null;
  seed?: number | null;
  stop?: string | string[] | null;
  /** Alternatives per token when logprobs are asked for; undefined = none. */
  logprobs?: number;
  /** Penalties, min_p, min_tokens, logit_bias, response_format: passed on as they are (the node checks them). */
  penalties?: Penalties;
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
  const format = FORMATS[job.kind];
  gen.metrics.resolved(c, job.target); // GET /metrics counts the request under its version and arm
  const requests = computeRequests(gen, job, format);
  const a = job.target.adapter;
  // Only nodes serving exactly the resolved base version (else 503 no_node_for_base), in rendezvous order.
  const routeKey = a ? formatRef(a.name, a.version) : job.target.base.name;
  const nodes = await timed(c, 'route', () => gen.pools.route(job.target.base, routeKey));
  const who: Identity = {
    id: job.id,
    created: Math.floor(Date.now() / 1000),
    model: job.model,
  };
  const slot = gen.concurrency.acquire(job.principal.keyId);
  if (!slot) {
    c.header('retry-after', '1');
    const limit = gen.config.concurrencyPerKey;
    throw new ApiError(429, `this key already has ${limit} generations running`, 'too_many_concurrent_requests');
  }
  setTargetHeaders(c, job.target);
  const usage = recordUsage(c, gen, job, slot);

  const events = runOnPool(c, gen, nodes, requests, job.n);
  let first: IteratorResult<ComputeEvent & { node?: string }>;
  try {
    first = await timed(c, 'node', () => events.next());
  } catch (e) {
    const error = toApiError(e);
    if (e instanceof ComputeError && e.retryAfter !== undefined) c.header('retry-after', String(e.retryAfter));
    usage.end({ prompt: 0, completion: 0 }, { error: error.code ?? 'error', status: error.status });
    throw error;
  }
  usage.firstToken(first.value?.node);
  const reply: Reply = { c, job, format, who, first, events, usage };
  return job.stream ? streamed(reply) : whole(reply);
}

export function newCompletionId(kind: CompletionJob['kind']): string {
  return `${FORMATS[kind].idPrefix}-${crypto.randomUUID().replace(/-/g, '')}`;
}

/** The node requests of a job's prompts, on the same nodes (one stream; several merged, numbered per prompt). */
function runOnPool(
  c: Context<AppEnv>,
  gen: GenerationContext,
  nodes: readonly string[],
  requests: GenerateBody[],
  n: number,
): NodeEvents {
  const run = (body: GenerateBody, signal: AbortSignal) =>
    generateOnPool(gen.pools.pool, nodes, body, gen.config.computeToken, signal);
  if (requests.length === 1) return run(requests[0], c.req.raw.signal);
  // One signal for the prompts' node requests: the client leaving, or the merge ending, aborts them all.
  const stop = new AbortController();
  const left = () => stop.abort();
  c.req.raw.signal.addEventListener('abort', left);
  const streams = requests.map((body) => run(body, stop.signal));
  return mergePrompts(streams, n, () => {
    c.req.raw.signal.removeEventListener('abort', left);
    stop.abort();
  });
}

/**
 * The compute node's requests for a job, one per prompt, checked against the deployment's limit:
 * every choice of every prompt may run to max_tokens, so the limit bounds their sum (without
 * max_tokens, chat shares the limit among the choices).
 */
function computeRequests(gen: GenerationContext, job: CompletionJob, format: ResponseFormat): GenerateBody[] {
  const limit = gen.config.maxTokens;
  const choices = job.inputs.length * job.n;
  const maxTokens = job.maxTokens ?? format.defaultMaxTokens ?? Math.max(1, Math.floor(limit / choices));
  if (maxTokens * choices > limit) {
    const asked = choices > 1 ? `max_tokens ${maxTokens} times ${choices} choices` : `max_tokens ${maxTokens}`;
    throw new ApiError(
      400,
      `${asked} is over this deployment's limit of ${limit}`,
      'max_tokens_too_large',
      'max_tokens',
    );
  }
  return job.inputs.map((input) => ({
    ...input,
    // A node serving other weights than the base refuses the request (409), whatever it reported before.
    ...refsOf(job.target),
    max_tokens: maxTokens,
    temperature: job.temperature ?? 1,
    top_p: job.topP ?? undefined,
    seed: job.seed ?? undefined,
    stop: typeof job.stop === 'string' ? [job.stop] : (job.stop ?? undefined),
    logprobs: job.logprobs,
    ...job.penalties,
    ...(job.n > 1 ? { n: job.n } : {}),
    deadline_ms: gen.config.deadlineMs,
  }));
}

/** A completion whose first event came: what answering it needs, streamed or whole. */
interface Reply {
  c: Context<AppEnv>;
  job: CompletionJob;
  format: ResponseFormat;
  who: Identity;
  first: IteratorResult<ComputeEvent>;
  events: NodeEvents;
  usage: Usage;
}

type Usage = ReturnType<typeof recordUsage>;

/**
 * The job's usage, as src/experiments/recorder.ts records it (exposure, usage event, experiment
 * aggregates, guardrails), counted in GET /metrics; every completion ends exactly through end(),
 * which frees the key's concurrency slot.
 */
function recordUsage(c: Context<AppEnv>, gen: GenerationContext, job: CompletionJob, release: () => void) {
  const { target, principal } = job;
  const ctx: RecorderContext = {
    registry: c.get('deps').registry,
    events: gen.events,
    evaluatedAt: gen.evaluatedAt,
    defer: (work) => gen.defer(c, work),
    experimentChanged: () => gen.cache.clear(),
  };
  const recorder = usageRecorder(ctx, {
    completionId: job.id,
    tenantId: principal.tenantId,
    keyId: principal.keyId,
    adapter: target.adapter ?? null,
    base: target.base.name,
    experiment: target.experiment,
    stream: job.stream,
  });
  return {
    firstToken: (node: string | undefined) => recorder.firstToken(node),
    end(tokens: { prompt: number; completion: number }, data: Record<string, unknown>) {
      release();
      gen.metrics.completed(c, recorder.end(tokens, data));
    },
  };
}

/** The whole response, once the node is done. */
async function whole({ c, job, format, who, first, events, usage }: Reply): Promise<Response> {
  const tokens: TokenEvent[] = [];
  let end: ComputeEvent | undefined;
  try {
    for (let next = first; !next.done; next = await events.next()) {
      const e = honest(next.value);
      if (e.type === 'token') tokens.push(e);
      else end = e;
    }
  } catch (e) {
    end = { type: 'error', error: { message: (e as Error).message, type: 'server_error', code: 'compute_error' } };
  }
  if (end?.type !== 'done') {
    const code = end?.type === 'error' ? (end.error.code ?? 'compute_error') : 'compute_incomplete';
    usage.end(
      { prompt: 0, completion: tokens.length },
      { error: end?.type === 'error' ? end.error.code : 'incomplete' },
    );
    throw new ApiError(
      502,
      end?.type === 'error' ? end.error.message : 'the compute node ended without a result',
      code,
    );
  }
  const u = usageOf(end.usage.prompt_tokens, end.usage.completion_tokens);
  const reason = finishReason(end.finish_reason);
  usage.end({ prompt: u.prompt_tokens, completion: u.completion_tokens }, { finish_reason: reason });
  const choices = choicesOf(end).map((choice): ChoiceOutput => ({
    index: choice.index,
    tokens: tokens.filter((t) => (t.index ?? 0) === choice.index),
    finish: finishReason(choice.finish_reason),
    echo: job.echo?.[Math.floor(choice.index / job.n)],
  }));
  return c.json(format.whole(who, choices, u, job.logprobs));
}

/** Server-sent events in OpenAI's chunk format, ending in `[DONE]` or an error chunk. */
function streamed({ c, job, format, who, first, events, usage }: Reply): Response {
  c.header('x-accel-buffering', 'no');
  return sseResponse(c, async (sse) => {
    const send = (chunk: object) =>
      sse.writeSSE({
        data: JSON.stringify(job.includeUsage && !('usage' in chunk) ? { ...chunk, usage: null } : chunk),
      });
    let completion = 0;
    /** Text streamed so far per choice (logprobs' text_offset). */
    const offsets = new Map<number, number>();
    // With several choices each one's last chunk goes as it ends (as OpenAI's); with one, at the end.
    const choices = job.inputs.length * job.n;
    const ended = new Set<number>();
    const end = (index: number, reason: string) => {
      ended.add(index);
      return send(format.final(who, finishReason(reason), index));
    };
    try {
      for (let index = 0; index < choices; index++) {
        const opening = format.opening(who, index, job.echo?.[Math.floor(index / job.n)]);
        if (opening) await send(opening);
      }
      for (let next = first; !next.done; next = await events.next()) {
        const e = honest(next.value);
        if (e.type === 'token') {
          completion++;
          const index = e.index ?? 0;
          if (e.text || job.logprobs !== undefined) {
            const offset = offsets.get(index) ?? 0;
            await send(format.token(who, e, job.logprobs, offset));
            offsets.set(index, offset + e.text.length);
          }
          if (choices > 1 && e.finish_reason) await end(index, e.finish_reason);
        } else if (e.type === 'done') {
          const reason = finishReason(e.finish_reason);
          const u = usageOf(e.usage.prompt_tokens, e.usage.completion_tokens);
          for (const choice of choicesOf(e))
            if (!ended.has(choice.index)) await end(choice.index, choice.finish_reason);
          if (job.includeUsage) await send(format.usageChunk(who, u));
          await sse.writeSSE({ data: '[DONE]' });
          usage.end({ prompt: u.prompt_tokens, completion: u.completion_tokens }, { finish_reason: reason });
          return;
        } else {
          await sendError(sse, e.error.message, e.error.type, e.error.code ?? null);
          usage.end({ prompt: 0, completion }, { error: e.error.code ?? 'compute_error' });
          return;
        }
      }
      await sendError(sse, 'the compute node ended the stream early', 'server_error', 'compute_stream_broken');
      usage.end({ prompt: 0, completion }, { error: 'compute_stream_broken' });
    } catch {
      // The client went away (or the connection broke): nothing left to tell it.
      usage.end({ prompt: 0, completion }, { error: 'client_disconnected' });
    }
  });
}

/** An error inside a stream: OpenAI's JSON error object as a data chunk (the SDKs raise it). */
function sendError(sse: SseWriter, message: string, type: string, code: string | null): Promise<void> {
  const body = errorBody(502, message, code);
  return sse.writeSSE({ data: JSON.stringify({ error: { ...body.error, type } }) });
}

function setTargetHeaders(c: Context<AppEnv>, t: Target): void {
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

/** OpenAI's finish_reason of a generation or a choice ('cancelled' never gets here: see honest()). */
function finishReason(r: string): OpenAIFinishReason {
  return r === 'stop' ? 'stop' : 'length';
}

/** A generation the node cut short is an error for the client, never a "length" finish. */
function honest(e: ComputeEvent): ComputeEvent {
  if (e.type !== 'done' || e.finish_reason !== 'cancelled') return e;
  const message = 'the compute node cancelled the generation before it finished';
  return { type: 'error', error: { message, type: 'server_error', code: 'generation_cancelled' } };
}
