import type { Context } from 'hono';
import { streamSSE, type SSEStreamingApi } from 'hono/streaming';
import type { AppEnv } from '../../../registry/http.ts';
import { appendEvents, countedEventStatement, type EventInput } from '../../../registry/queries/events.ts';
import { servedCounts, servedStatements } from '../../../registry/queries/experiment-aggregates.ts';
import { getExperiment } from '../../../registry/queries/experiments.ts';
import { evaluateExperiment } from '../experiments/evaluate.ts';
import { histogramBucket } from '../experiments/stats.ts';
import { formatRef } from '../../../registry/names.ts';
import { setWarning } from '../../http/middleware.ts';
import { ApiError, errorBody } from '../../http/errors.ts';
import type { Principal } from '../../http/principal.ts';
import type { ComputeEvent, GenerateBody } from '../../protocol/compute.ts';
import { ComputeError, generateOnPool, toApiError } from '../routing/compute-client.ts';
import {
  FORMATS,
  usage as usageOf,
  type Identity,
  type OpenAIFinishReason,
  type ResponseFormat,
} from '../openai/format.ts';
import type { Penalties } from '../openai/schemas.ts';
import { refsOf } from '../openai/tokenize.ts';
import type { GenerationContext } from './context.ts';
import { timed } from './timing.ts';
import type { Target } from './resolve.ts';

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
  input: { prompt: string } | { prompt_ids: number[] };
  maxTokens?: number;
  temperature?: number | null;
  topP?: number | null;
  seed?: number | null;
  stop?: string | string[] | null;
  /** Alternatives per token when logprobs are asked for; undefined = none. */
  logprobs?: number;
  /** Penalties, min_p, min_tokens, logit_bias: passed on as they are (the node checks their values). */
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
  const request = computeRequest(gen, job, format);
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
  const usage = usageRecorder(c, gen, job, who.id, slot);

  const events = generateOnPool(gen.pools.pool, nodes, request, gen.config.computeToken, c.req.raw.signal);
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

/** The compute node's request for a job (checked against the deployment's limits). */
function computeRequest(gen: GenerationContext, job: CompletionJob, format: ResponseFormat): GenerateBody {
  const maxTokens = job.maxTokens ?? format.defaultMaxTokens ?? gen.config.maxTokens;
  if (maxTokens > gen.config.maxTokens) {
    throw new ApiError(
      400,
      `max_tokens ${maxTokens} is over this deployment's limit of ${gen.config.maxTokens}`,
      'max_tokens_too_large',
      'max_tokens',
    );
  }
  return {
    ...job.input,
    // A node serving other weights than the base refuses the request (409), whatever it reported before.
    ...refsOf(job.target),
    max_tokens: maxTokens,
    temperature: job.temperature ?? 1,
    top_p: job.topP ?? undefined,
    seed: job.seed ?? undefined,
    stop: typeof job.stop === 'string' ? [job.stop] : (job.stop ?? undefined),
    logprobs: job.logprobs,
    ...job.penalties,
    deadline_ms: gen.config.deadlineMs,
  };
}

type UsageRecorder = ReturnType<typeof usageRecorder>;

/** A completion whose first event came: what answering it needs, streamed or whole. */
interface Reply {
  c: Context<AppEnv>;
  job: CompletionJob;
  format: ResponseFormat;
  who: Identity;
  first: IteratorResult<ComputeEvent>;
  events: NodeEvents;
  usage: UsageRecorder;
}

/** The job's experiment exposure (after its first token) and its usage event (at the end, whatever the end). */
function usageRecorder(
  c: Context<AppEnv>,
  gen: GenerationContext,
  job: CompletionJob,
  completionId: string,
  /** Frees the key's concurrency slot: every completion ends exactly through end(). */
  release: () => void,
) {
  const { target, principal } = job;
  const base: Omit<EventInput, 'type'> = {
    tenantId: principal.tenantId,
    keyId: principal.keyId,
    adapter: target.adapter?.name ?? null,
    adapterVersion: target.adapter?.version ?? null,
    base: target.base.name,
    experimentId: target.experiment?.id ?? null,
    arm: target.experiment?.arm ?? null,
    unit: target.experiment?.unit ?? null,
    completionId,
  };
  const { registry } = c.var.deps;
  const record = (events: number, write: () => Promise<void>) => gen.defer(c, gen.events.write(events, write));
  const started = Date.now();
  // The exposure is written once the first token is on its way (or the request ended without one),
  // a macrotask later: never on the path to the first token (SQLite writes block the event loop).
  let exposed = !target.experiment;
  const expose = () => {
    if (exposed) return;
    exposed = true;
    const at = new Date(started);
    record(1, () => afterIo().then(() => appendEvents(registry, [{ ...base, type: 'exposure', at }])));
  };
  // Guardrails and auto-promotion act without anyone reading results: at most every 30 s per experiment.
  const guardrailsNow = async (id: string) => {
    const now = Date.now();
    if (now - (gen.evaluatedAt.get(id) ?? -Infinity) < 30_000) return;
    gen.evaluatedAt.set(id, now);
    const experiment = await getExperiment(registry.db, id);
    if (experiment?.status !== 'running') return;
    const after = (await evaluateExperiment(registry, experiment, new Date(now))).experiment;
    // A guardrail killed it, or a promotion stopped it and moved its alias: served from the next request.
    if (after.status !== experiment.status || after.killed !== experiment.killed) gen.cache.clear();
  };
  let ttft = 0;
  let node: string | undefined;
  return {
    firstToken(from: string | undefined) {
      ttft = Date.now() - started;
      node = from;
      expose();
    },
    end(tokens: { prompt: number; completion: number }, data: Record<string, unknown>) {
      release();
      expose();
      const timing = { ttft_ms: ttft, total_ms: Date.now() - started, stream: job.stream };
      const payload = {
        prompt_tokens: tokens.prompt,
        completion_tokens: tokens.completion,
        ...timing,
        ...(node ? { node } : {}),
        ...data,
      };
      gen.metrics.completed(c, payload);
      const e = target.experiment;
      // A client error (4xx: a prompt the node refuses, a busy node) says nothing about the arm: logged,
      // never counted (it would otherwise let a caller's bad requests trip an arm's error guardrail).
      if (!e || clientError(data))
        return record(1, () => appendEvents(registry, [{ ...base, type: 'usage', data: payload }]));
      // The usage event and its experiment aggregates, in one write; `counted` says whether it counted.
      const failed = data.error ? 1 : 0;
      const served = {
        experimentId: e.id,
        unit: e.unit,
        arm: e.armIndex,
        period: e.period,
        perRequest: e.perRequest,
        at: new Date(started),
        requests: 1,
        errors: failed,
        tokens: { prompt: tokens.prompt, completion: tokens.completion },
        latencyMs: failed ? 0 : timing.total_ms,
        ttftMs: failed ? 0 : timing.ttft_ms,
        latencyBuckets: new Map(failed ? [] : [[histogramBucket(timing.total_ms), 1]]),
        ttftBuckets: new Map(failed ? [] : [[histogramBucket(timing.ttft_ms), 1]]),
      };
      const written = gen.events.write(1, () =>
        registry.atomic([
          countedEventStatement(registry, { ...base, type: 'usage', data: payload }, servedCounts(served)),
          ...servedStatements(registry.db, served),
        ]),
      );
      gen.defer(
        c,
        written.then(() => guardrailsNow(e.id)),
      );
    },
  };
}

const afterIo = () => new Promise((done) => setTimeout(done, 0));

const clientError = (data: Record<string, unknown>) =>
  typeof data.status === 'number' && data.status >= 400 && data.status < 500;

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
  return c.json(format.whole(who, tokens, reason, u, job.logprobs));
}

/** Server-sent events in OpenAI's chunk format, ending in `[DONE]` or an error chunk. */
function streamed({ c, job, format, who, first, events, usage }: Reply): Response {
  c.header('x-accel-buffering', 'no');
  return streamSSE(c, async (sse) => {
    const send = (chunk: object) =>
      sse.writeSSE({
        data: JSON.stringify(job.includeUsage && !('usage' in chunk) ? { ...chunk, usage: null } : chunk),
      });
    let completion = 0;
    let offset = 0;
    try {
      const opening = format.opening(who);
      if (opening) await send(opening);
      for (let next = first; !next.done; next = await events.next()) {
        const e = honest(next.value);
        if (e.type === 'token') {
          completion++;
          if (!e.text && job.logprobs === undefined) continue;
          await send(format.token(who, e, job.logprobs, offset));
          offset += e.text.length;
        } else if (e.type === 'done') {
          const reason = finishReason(e.finish_reason);
          const u = usageOf(e.usage.prompt_tokens, e.usage.completion_tokens);
          await send(format.final(who, reason));
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
function sendError(sse: SSEStreamingApi, message: string, type: string, code: string | null): Promise<void> {
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

/** OpenAI's finish_reason of a whole generation ('cancelled' never gets here: see honest()). */
function finishReason(r: string): OpenAIFinishReason {
  return r === 'stop' ? 'stop' : 'length';
}

/** A generation the node cut short is an error for the client, never a "length" finish. */
function honest(e: ComputeEvent): ComputeEvent {
  if (e.type !== 'done' || e.finish_reason !== 'cancelled') return e;
  const message = 'the compute node cancelled the generation before it finished';
  return { type: 'error', error: { message, type: 'server_error', code: 'generation_cancelled' } };
}
