import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { Context, MiddlewareHandler } from 'hono';
import type { AppEnv } from '../env.ts';
import { principalOf, validationHook } from '../../http/middleware.ts';
import { ApiError } from '../../http/errors.ts';
import type { Principal } from '../../http/principal.ts';
import { viewerOf } from '../../../registry/queries/adapters.ts';
import { bearer, errors, jsonBody } from '../../http/openapi.ts';
import { ChatCompletionRequest, CompletionRequest, penaltiesOf, promptsOf } from '../openai/schemas.ts';
import { renderPrompt } from '../openai/prompt.ts';
import { detokenize, tokenizeRoutes } from '../openai/tokenize.ts';
import { experimentUnit } from '../../experiments/units.ts';
import { complete, newCompletionId } from './complete.ts';
import type { GenerationContext } from './context.ts';
import { takeOrRefuse } from './rate-limit.ts';
import { resolveTarget, type Target } from './resolve.ts';
import { sinceHandedOn, timed } from './timing.ts';

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

/** The paths that generate (Server-Timing, refusal metering and the UTF-8 check apply to them). */
export const GENERATION_PATHS = [chatRoute.path, completionsRoute.path];

/** The OpenAI-compatible generation routes (and tokenize), mounted in the one app. */
export function generationRoutes(gen: GenerationContext): OpenAPIHono<AppEnv> {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  for (const path of GENERATION_PATHS) app.use(path, gen.metrics.meterRefusals, utf8Body);

  app.openapi(chatRoute, async (c) => {
    const body = c.req.valid('json');
    sinceHandedOn(c, 'parse');
    const n = body.n ?? 1;
    const principal = admit(c, gen, n);
    const id = newCompletionId('chat');
    const target = await resolve(c, gen, principal, body.model, body.user, id);
    const prompt = timed(c, 'template', () => renderPrompt(target, body));
    return complete(c, gen, {
      kind: 'chat',
      id,
      model: body.model,
      target,
      principal,
      inputs: [{ prompt }],
      n,
      maxTokens: body.max_completion_tokens ?? body.max_tokens ?? undefined,
      temperature: body.temperature,
      topP: body.top_p,
      seed: body.seed,
      stop: body.stop,
      logprobs: body.logprobs ? (body.top_logprobs ?? 0) : undefined,
      penalties: penaltiesOf(body),
      stream: !!body.stream,
      includeUsage: !!body.stream_options?.include_usage,
    });
  });

  app.openapi(completionsRoute, async (c) => {
    const body = c.req.valid('json');
    sinceHandedOn(c, 'parse');
    const n = body.n ?? 1;
    const prompts = promptsOf(body.prompt);
    const principal = admit(c, gen, prompts.length * n);
    const id = newCompletionId('text');
    const target = await resolve(c, gen, principal, body.model, body.user, id);
    return complete(c, gen, {
      kind: 'text',
      id,
      model: body.model,
      target,
      principal,
      inputs: prompts.map((p) => (typeof p === 'string' ? { prompt: p } : { prompt_ids: p })),
      n,
      // The prompts' text: a prompt of token ids is decoded on the model.
      echo: body.echo
        ? await Promise.all(prompts.map((p) => (typeof p === 'string' ? p : detokenize(c, gen, target, p))))
        : undefined,
      maxTokens: body.max_tokens ?? undefined,
      temperature: body.temperature,
      topP: body.top_p,
      seed: body.seed,
      stop: body.stop,
      logprobs: body.logprobs ?? undefined,
      penalties: penaltiesOf(body),
      stream: !!body.stream,
      includeUsage: !!body.stream_options?.include_usage,
    });
  });

  app.route('/', tokenizeRoutes(gen));

  return app;
}

/**
 * Refuses a body that is not valid UTF-8, as publish does: JSON parsing would otherwise turn bad
 * bytes into U+FFFD silently and generate from a prompt the client never sent. The text is left in
 * hono's body cache, where the validator's `c.req.json()` finds it: otherwise hono would make it
 * again from the cached bytes through a new web `Response` (a stream read, on the way to the first token).
 */
const utf8Body: MiddlewareHandler<AppEnv> = async (c, next) => {
  let text: string;
  try {
    text = STRICT_UTF8.decode(await c.req.arrayBuffer());
  } catch {
    throw new ApiError(400, 'the request body is not valid UTF-8', 'invalid_encoding');
  }
  // hono keeps promises there (its type says the values; every route's tests read bodies this way)
  (c.req.bodyCache as { text?: Promise<string> }).text = Promise.resolve(text);
  await next();
};
const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true });

/** The request's target for its caller and experiment unit (`user`, else x-versa-unit, else the request). */
function resolve(
  c: Context<AppEnv>,
  gen: GenerationContext,
  principal: Principal,
  model: string,
  user: string | null | undefined,
  completionId: string,
): Promise<Target> {
  const unit = experimentUnit(user, c.req.header('x-versa-unit'), completionId);
  return timed(c, 'resolve', () =>
    resolveTarget(c.get('deps').registry.db, model, viewerOf(principal), unit, gen.cache),
  );
}

/** Authenticates (scope generate) and applies the per-key rate limit: each of the request's `choices` counts. */
function admit(c: Context<AppEnv>, gen: GenerationContext, choices: number) {
  const principal = principalOf(c, 'generate');
  takeOrRefuse(c, gen.limiter, principal.keyId, 'requests', choices);
  return principal;
}
