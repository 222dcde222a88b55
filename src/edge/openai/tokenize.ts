import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import type { AppEnv } from '../env.ts';
import { viewerOf } from '../../../registry/queries/adapters.ts';
import { formatRef } from '../../../registry/names.ts';
import { bearer, errors, jsonBody } from '../../http/openapi.ts';
import { principalOf, validationHook } from '../../http/middleware.ts';
import {
  DetokenizeReply,
  MAX_DETOKENIZE_TOKENS,
  TokenizeReply,
  type AdapterRef,
  type DetokenizeBody,
  type TokenizeBody,
} from '../../protocol/compute.ts';
import { experimentUnit } from '../../experiments/units.ts';
import type { GenerationContext } from '../generation/context.ts';
import { takeOrRefuse } from '../generation/rate-limit.ts';
import { resolveTarget, type Target } from '../generation/resolve.ts';
import { callOnPool, toApiError } from '../routing/compute-client.ts';
import { renderPrompt } from './prompt.ts';
import { chatMessage, templateKwargs } from './schemas.ts';

/**
 * vLLM's POST /tokenize and /detokenize, under /v1 as the API's other routes: the token ids a prompt, or a
 * conversation rendered with the model's chat template, costs on the model a `model` string
 * resolves to, and the text of token ids. For a conversation the rendered prompt comes back too:
 * the template preview (what a chat request would send, and its cost) without generating. The
 * edge has no tokenizer (it may run in a Worker), so a compute node serving the resolved base
 * answers, under the resolved adapter (its task tokens count), over the compute protocol. Scope
 * generate; the per-key rate limit applies.
 */
const TokenizeRequest = z.union([
  z.strictObject({ model: z.string().min(1), prompt: z.string().max(1 << 20) }),
  z
    .strictObject({
      model: z.string().min(1),
      messages: z.array(chatMessage).min(1, 'messages must not be empty'),
      chat_template_kwargs: templateKwargs.nullish(),
      add_generation_prompt: z.boolean().nullish(),
      continue_final_message: z.boolean().nullish(),
    })
    .refine((r) => !(r.add_generation_prompt && r.continue_final_message), {
      message: 'continue_final_message and add_generation_prompt cannot both be true',
      path: ['continue_final_message'],
    }),
]);

/** The ids, and for messages the prompt they rendered to (the template preview the playground shows). */
const TokenizeAnswer = TokenizeReply.extend({
  prompt: z.string().optional().describe('With messages: the prompt text the chat template rendered'),
});

const DetokenizeRequest = z.strictObject({
  model: z.string().min(1),
  tokens: z.array(z.number().int().nonnegative()).max(MAX_DETOKENIZE_TOKENS),
});

const tokenizeRoute = createRoute({
  method: 'post',
  path: '/v1/tokenize',
  tags: ['generation'],
  summary: "vLLM's tokenize: a prompt's or a conversation's token ids on the model (scope generate)",
  security: bearer,
  request: { body: jsonBody(TokenizeRequest) },
  responses: {
    200: { description: 'The token ids', content: { 'application/json': { schema: TokenizeAnswer } } },
    ...errors,
  },
});

const detokenizeRoute = createRoute({
  method: 'post',
  path: '/v1/detokenize',
  tags: ['generation'],
  summary: "vLLM's detokenize: the text of token ids on the model (scope generate)",
  security: bearer,
  request: { body: jsonBody(DetokenizeRequest) },
  responses: {
    200: { description: 'The text', content: { 'application/json': { schema: DetokenizeReply } } },
    ...errors,
  },
});

export function tokenizeRoutes(gen: GenerationContext): OpenAPIHono<AppEnv> {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.openapi(tokenizeRoute, async (c) => {
    const body = c.req.valid('json');
    const target = await targetOf(c, gen, body.model);
    const rendered = 'prompt' in body ? undefined : renderPrompt(target, body);
    const prompt = 'prompt' in body ? body.prompt : rendered!;
    const reply = await onNode(c, gen, target, '/v1/internal/tokenize', { ...refsOf(target), prompt });
    return c.json({ ...TokenizeReply.parse(reply), ...(rendered === undefined ? {} : { prompt: rendered }) }, 200);
  });
  app.openapi(detokenizeRoute, async (c) => {
    const body = c.req.valid('json');
    const target = await targetOf(c, gen, body.model);
    return c.json({ prompt: await detokenize(c, gen, target, body.tokens) } satisfies DetokenizeReply, 200);
  });
  return app;
}

/**
 * The caller's target for `model` (authenticated, scope generate, rate limited); a running
 * experiment: a per-request arm.
 */
async function targetOf(c: Context<AppEnv>, gen: GenerationContext, model: string): Promise<Target> {
  const principal = principalOf(c, 'generate');
  takeOrRefuse(c, gen.limiter, principal.keyId, 'requests');
  const unit = experimentUnit(undefined, c.req.header('x-versa-unit'), crypto.randomUUID());
  return resolveTarget(c.var.deps.registry.db, model, viewerOf(principal), unit);
}

/** The base and adapter a node is asked for: ids and digests only (a node reads files from its own registry). */
export function refsOf(target: Target): { base: NonNullable<TokenizeBody['base']>; adapter: AdapterRef | undefined } {
  const a = target.adapter;
  return {
    base: { id: formatRef(target.base.name, target.base.version), sha256: target.base.sha256 },
    adapter: a && {
      id: formatRef(a.name, a.version),
      sha256: a.sha256,
      files: a.files.map(({ name, sha256, bytes }) => ({ name, sha256, bytes })),
    },
  };
}

/** The text of token ids on the target's model (also completions' echo of a prompt of ids). */
export async function detokenize(
  c: Context<AppEnv>,
  gen: GenerationContext,
  target: Target,
  tokens: number[],
): Promise<string> {
  const reply = await onNode(c, gen, target, '/v1/internal/detokenize', { ...refsOf(target), tokens });
  return DetokenizeReply.parse(reply).prompt;
}

async function onNode(
  c: Context<AppEnv>,
  gen: GenerationContext,
  target: Target,
  path: string,
  body: TokenizeBody | DetokenizeBody,
): Promise<unknown> {
  const a = target.adapter;
  const nodes = await gen.pools.route(target.base, a ? formatRef(a.name, a.version) : target.base.name);
  try {
    return await callOnPool(gen.pools.pool, nodes, path, body, gen.config.computeToken, c.req.raw.signal);
  } catch (e) {
    throw toApiError(e);
  }
}
