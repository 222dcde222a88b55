import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { Context, MiddlewareHandler } from 'hono';
import { type AppEnv } from '../../../registry/http.ts';
import { principalOf, validationHook } from '../../http/middleware.ts';
import { ApiError } from '../../http/errors.ts';
import { viewerOf } from '../../../registry/queries/adapters.ts';
import { bearer, errors, jsonBody } from '../../http/openapi.ts';
import { ChatCompletionRequest, CompletionRequest } from '../openai/schemas.ts';
import { renderChat, TemplateBudgetError, TemplateError } from '../../engine/tokenizer/chat-template.ts';
import { experimentEdgeRoutes } from '../experiments/routes.ts';
import { experimentUnit } from '../experiments/units.ts';
import { complete, newCompletionId } from './complete.ts';
import type { GenerationContext } from './context.ts';
import { takeOrRefuse } from './rate-limit.ts';
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
    'Sticky experiment unit: `user`, else header x-versa-unit, else the request itself (per-request).',
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

/** The OpenAI-compatible generation routes and experiment feedback/results, mounted in the one app. */
export function generationRoutes(gen: GenerationContext): OpenAPIHono<AppEnv> {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  for (const path of [chatRoute.path, completionsRoute.path]) app.use(path, gen.metrics.meterRefusals, utf8Body);

  app.openapi(chatRoute, async (c) => {
    const principal = admit(c, gen);
    const body = c.req.valid('json');
    const id = newCompletionId('chat');
    const target = await resolveTarget(
      c.var.deps.registry.db,
      body.model,
      viewerOf(principal),
      experimentUnit(body.user, c.req.header('x-versa-unit'), id),
    );
    let prompt: string;
    try {
      prompt = renderChat(body.messages, {
        // The adapter's own template wins; else the base's, unless the adapter's task tokens need the default.
        template: target.adapter?.chatTemplate ?? (target.adapter?.taskTokens.length ? null : target.base.chatTemplate),
        taskTokens: target.adapter?.taskTokens,
      });
    } catch (e) {
      const code = e instanceof TemplateBudgetError ? 'template_budget_exceeded' : 'chat_template_error';
      throw new ApiError(422, (e as TemplateError).message, code);
    }
    return complete(c, gen, {
      kind: 'chat',
      id,
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
    const id = newCompletionId('text');
    const target = await resolveTarget(
      c.var.deps.registry.db,
      body.model,
      viewerOf(principal),
      experimentUnit(body.user, c.req.header('x-versa-unit'), id),
    );
    return complete(c, gen, {
      kind: 'text',
      id,
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

  app.route('/', experimentEdgeRoutes(gen));

  return app;
}

/**
 * Refuses a body that is not valid UTF-8, as publish does: JSON parsing would otherwise turn bad
 * bytes into U+FFFD silently and generate from a prompt the client never sent.
 */
const utf8Body: MiddlewareHandler<AppEnv> = async (c, next) => {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(await c.req.arrayBuffer()); // cached for the validator
  } catch {
    throw new ApiError(400, 'the request body is not valid UTF-8', 'invalid_encoding');
  }
  await next();
};

/** Authenticates (scope generate) and applies the per-key rate limit. */
function admit(c: Context<AppEnv>, gen: GenerationContext) {
  const principal = principalOf(c, 'generate');
  takeOrRefuse(c, gen.limiter, principal.keyId, 'requests');
  return principal;
}
