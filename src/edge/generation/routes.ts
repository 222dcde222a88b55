import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { type AppEnv } from '../../../registry/http.ts';
import { isAdmin } from '../../http/principal.ts';
import { principalOf, validationHook } from '../../http/middleware.ts';
import { ApiError } from '../../http/errors.ts';
import { viewerOf } from '../../../registry/queries/adapters.ts';
import { appendEvents, experimentEvents, findCompletion } from '../../../registry/queries/events.ts';
import { findVisibleExperiment } from '../../../registry/queries/experiments.ts';
import { bearer, errors, json, jsonBody } from '../../http/openapi.ts';
import { ChatCompletionRequest, CompletionRequest, FeedbackRequest } from '../openai/schemas.ts';
import { renderChat, TemplateError } from '../../engine/tokenizer/chat-template.ts';
import { complete } from './complete.ts';
import type { GenerationContext } from './context.ts';
import { experimentResults } from './results.ts';
import { resolveTarget } from './resolve.ts';

const generationErrors = {
  ...errors,
  410: {
    description: 'The resolved version was yanked',
    content: { 'application/json': { schema: errors[400].content['application/json'].schema } },
  },
  429: {
    description: 'Rate limit exceeded (see Retry-After)',
    content: { 'application/json': { schema: errors[400].content['application/json'].schema } },
  },
  503: {
    description: 'No compute node could take the request',
    content: { 'application/json': { schema: errors[400].content['application/json'].schema } },
  },
} as const;

const streamResponse = {
  200: {
    description: 'The completion (JSON), or with `stream: true` server-sent events ending in `data: [DONE]`',
    content: {
      'application/json': { schema: z.object({}).passthrough() },
      'text/event-stream': { schema: z.string() },
    },
  },
  ...generationErrors,
};

const chatRoute = createRoute({
  method: 'post',
  path: '/v1/chat/completions',
  tags: ['generation'],
  summary: 'OpenAI-compatible chat completion (scope generate)',
  description:
    'model: BASE[@VERSION], ADAPTER (experiment arm or alias production), ADAPTER@VERSION or ADAPTER@ALIAS. ' +
    'Sticky experiment unit: `user`, else header x-versa-unit.',
  security: bearer,
  request: { body: jsonBody(ChatCompletionRequest) },
  responses: streamResponse,
});

const completionsRoute = createRoute({
  method: 'post',
  path: '/v1/completions',
  tags: ['generation'],
  summary: 'OpenAI-compatible (legacy) text completion (scope generate)',
  security: bearer,
  request: { body: jsonBody(CompletionRequest) },
  responses: streamResponse,
});

const feedbackRoute = createRoute({
  method: 'post',
  path: '/v1/feedback',
  tags: ['experiments'],
  summary: 'Score a completion (scope generate); it counts toward its experiment arm',
  security: bearer,
  request: { body: jsonBody(FeedbackRequest) },
  responses: {
    201: json(
      z.object({
        completion_id: z.string(),
        score: z.number(),
        experiment: z.string().nullable(),
        arm: z.string().nullable(),
      }),
      'Recorded',
    ),
    ...errors,
  },
});

const resultsRoute = createRoute({
  method: 'get',
  path: '/v1/experiments/{id}/results',
  tags: ['experiments'],
  summary:
    'Per-arm results: units, requests, tokens, latency, error rate, feedback with 95 % intervals, ' +
    'difference to control, SRM check',
  security: bearer,
  request: {
    params: z.object({
      id: z
        .string()
        .min(1)
        .max(100)
        .openapi({ param: { name: 'id', in: 'path' } }),
    }),
  },
  responses: { 200: json(z.object({}).passthrough(), 'Results'), ...errors },
});

/** The OpenAI-compatible generation routes and experiment feedback/results, mounted in the one app. */
export function generationRoutes(gen: GenerationContext): OpenAPIHono<AppEnv> {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });

  app.openapi(chatRoute, async (c) => {
    const principal = admit(c, gen);
    const body = c.req.valid('json');
    const target = await resolveTarget(
      c.var.deps.registry.db,
      body.model,
      viewerOf(principal),
      unitOf(c, body.user, principal.keyId),
    );
    let prompt: string;
    try {
      prompt = renderChat(body.messages, {
        template: target.adapter?.chatTemplate,
        taskTokens: target.adapter?.taskTokens,
      });
    } catch (e) {
      throw new ApiError(422, (e as TemplateError).message, 'chat_template_error');
    }
    return complete(c, gen, {
      kind: 'chat',
      model: body.model,
      target,
      principal,
      input: { prompt },
      maxTokens: body.max_completion_tokens ?? body.max_tokens ?? undefined,
      temperature: body.temperature,
      topP: body.top_p,
      seed: body.seed,
      stop: body.stop,
      logprobs: body.logprobs ? (body.top_logprobs ?? 0) : undefined,
      stream: !!body.stream,
      includeUsage: !!body.stream_options?.include_usage,
    });
  });

  app.openapi(completionsRoute, async (c) => {
    const principal = admit(c, gen);
    const body = c.req.valid('json');
    const target = await resolveTarget(
      c.var.deps.registry.db,
      body.model,
      viewerOf(principal),
      unitOf(c, body.user, principal.keyId),
    );
    return complete(c, gen, {
      kind: 'text',
      model: body.model,
      target,
      principal,
      input: typeof body.prompt === 'string' ? { prompt: body.prompt } : { prompt_ids: body.prompt },
      maxTokens: body.max_tokens ?? undefined,
      temperature: body.temperature,
      topP: body.top_p,
      seed: body.seed,
      stop: body.stop,
      logprobs: body.logprobs ?? undefined,
      stream: !!body.stream,
      includeUsage: !!body.stream_options?.include_usage,
    });
  });

  app.openapi(feedbackRoute, async (c) => {
    const principal = principalOf(c, 'generate');
    const { completion_id, score } = c.req.valid('json');
    const { registry } = c.var.deps;
    const usage = await findCompletion(registry.db, completion_id, principal.tenantId);
    if (!usage)
      throw new ApiError(404, `completion "${completion_id}" not found`, 'completion_not_found', 'completion_id');
    // Only who asked for the completion (or an admin of its tenant) rates it; a repeat replaces the
    // earlier score (results keep the latest per completion).
    if (usage.keyId !== principal.keyId && !isAdmin(principal)) {
      throw new ApiError(403, 'only the key that made a completion (or an admin) may rate it', 'not_your_completion');
    }
    await appendEvents(registry, [
      {
        type: 'feedback',
        tenantId: principal.tenantId,
        keyId: principal.keyId,
        adapter: usage.adapter,
        adapterVersion: usage.adapterVersion,
        base: usage.base,
        experimentId: usage.experimentId,
        arm: usage.arm,
        unit: usage.unit,
        completionId: completion_id,
        data: { score },
      },
    ]);
    return c.json({ completion_id, score, experiment: usage.experimentId, arm: usage.arm }, 201);
  });

  app.openapi(resultsRoute, async (c) => {
    const principal = principalOf(c, 'read');
    const db = c.var.deps.registry.db;
    const experiment = await findVisibleExperiment(db, c.req.valid('param').id, viewerOf(principal));
    return c.json(experimentResults(experiment, await experimentEvents(db, experiment.id)), 200);
  });

  return app;
}

/** Authenticates (scope generate) and applies the per-key rate limit. */
function admit(c: Context<AppEnv>, gen: GenerationContext) {
  const principal = principalOf(c, 'generate');
  const taken = gen.limiter.take(principal.keyId);
  if (!taken.ok) {
    c.header('retry-after', String(taken.retryAfter));
    throw new ApiError(
      429,
      `rate limit of ${gen.config.rateLimitPerMinute} requests per minute exceeded for this key`,
      'rate_limit_exceeded',
    );
  }
  return principal;
}

/** The experiment unit: OpenAI's `user`, else the x-versa-unit header, else the API key. */
function unitOf(c: Context<AppEnv>, user: string | null | undefined, keyId: string): string {
  const unit = user || c.req.header('x-versa-unit') || `key:${keyId}`;
  // Units are stored with every event: bounded, like OpenAI's own limits on `user`.
  if (unit.length > MAX_UNIT_CHARS) {
    throw new ApiError(
      400,
      `the experiment unit (user or x-versa-unit) is over ${MAX_UNIT_CHARS} characters`,
      'unit_too_long',
      'user',
    );
  }
  return unit;
}

const MAX_UNIT_CHARS = 256;
