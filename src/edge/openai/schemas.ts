import { z } from '@hono/zod-openapi';
import { MAX_CHOICES, MAX_LOGIT_BIAS } from '../../engine/generation/request.ts';
import type { SamplingFields } from '../../protocol/compute.ts';
import { RESERVED_TEMPLATE_VARIABLES } from '../../engine/tokenizer/chat-template.ts';
import { compileResponseFormat, SchemaError } from '../../engine/structured/schema.ts';

/**
 * OpenAI request bodies as Versa accepts them, with vLLM's extra sampling parameters. Parameters
 * Versa cannot honour are refused with a clear error rather than silently ignored, unless the
 * value asks for the default (best_of: 1, ...). Unknown fields are refused, as OpenAI does.
 */
const stop = z.union([z.string().min(1), z.array(z.string().min(1)).max(4)]).nullish();
const only = <T extends z.ZodTypeAny>(schema: T, value: unknown, why: string) =>
  schema.nullish().refine((v) => v === undefined || v === null || v === value, { message: why });

/**
 * OpenAI's response_format. The schema is compiled here too (the node compiles it again for its
 * vocabulary), so that a keyword Versa does not support is a 400 naming it before any node works.
 */
function responseFormat() {
  const jsonSchema = z
    .object({
      name: z.string().regex(/^[a-zA-Z0-9_-]{1,64}$/, 'json_schema.name: a-z, A-Z, 0-9, _ and -, 64 at most'),
      description: z.string().optional(),
      schema: z.record(z.string(), z.unknown()).optional(),
      strict: z.boolean().nullish(),
    })
    .strict();
  return z
    .discriminatedUnion('type', [
      z.object({ type: z.literal('text') }).strict(),
      z.object({ type: z.literal('json_object') }).strict(),
      z.object({ type: z.literal('json_schema'), json_schema: jsonSchema }).strict(),
    ])
    .superRefine((format, ctx) => {
      try {
        compileResponseFormat(format);
      } catch (e) {
        if (!(e instanceof SchemaError)) throw e;
        ctx.addIssue({ code: 'custom', message: e.message });
      }
    })
    .nullish();
}

const common = {
  model: z.string().min(1, 'model is required'),
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().optional() }).strict().nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().gt(0).max(1).nullish(),
  max_tokens: z.number().int().positive().nullish(),
  stop,
  seed: z.number().int().nullish(),
  user: z.string().max(256).nullish(),
  n: z.number().int().min(1, 'n must be at least 1').max(MAX_CHOICES, `n must be at most ${MAX_CHOICES}`).nullish(),
  presence_penalty: z.number().min(-2).max(2).nullish(),
  frequency_penalty: z.number().min(-2).max(2).nullish(),
  logit_bias: z
    .record(z.string().regex(/^\d{1,9}$/, 'logit_bias keys are token ids'), z.number().min(-100).max(100))
    .refine((b) => Object.keys(b).length <= MAX_LOGIT_BIAS, `logit_bias takes ${MAX_LOGIT_BIAS} entries at most`)
    .nullish(),
  metadata: z.record(z.string(), z.string()).nullish(),
  // vLLM's extra sampling parameters.
  repetition_penalty: z.number().gt(0).nullish(),
  min_p: z.number().min(0).max(1).nullish(),
  min_tokens: z.number().int().min(0).nullish(),
  response_format: responseFormat(),
};

/** A request's penalties, min_p, min_tokens, logit_bias and response_format, as the compute protocol has them. */
export type Penalties = Pick<
  SamplingFields,
  | 'frequency_penalty'
  | 'presence_penalty'
  | 'repetition_penalty'
  | 'min_p'
  | 'min_tokens'
  | 'logit_bias'
  | 'response_format'
>;

export function penaltiesOf(body: { [K in keyof Penalties]?: Penalties[K] | null }): Penalties {
  return {
    frequency_penalty: body.frequency_penalty ?? undefined,
    presence_penalty: body.presence_penalty ?? undefined,
    repetition_penalty: body.repetition_penalty ?? undefined,
    min_p: body.min_p ?? undefined,
    min_tokens: body.min_tokens ?? undefined,
    logit_bias: body.logit_bias ?? undefined,
    response_format: body.response_format ?? undefined,
  };
}

/** The most JSON chat_template_kwargs may take: a few switches, not a second prompt. */
const MAX_TEMPLATE_KWARGS_BYTES = 4096;
export const templateKwargs = z
  .record(z.string(), z.unknown())
  .refine((k) => new TextEncoder().encode(JSON.stringify(k)).length <= MAX_TEMPLATE_KWARGS_BYTES, {
    message: `chat_template_kwargs takes ${MAX_TEMPLATE_KWARGS_BYTES} bytes of JSON at most`,
  })
  .refine((k) => !RESERVED_TEMPLATE_VARIABLES.some((name) => name in k), {
    message: `chat_template_kwargs may not set ${RESERVED_TEMPLATE_VARIABLES.join(', ')} (use the request's fields)`,
  });

export const chatMessage = z
  .object({
    role: z.enum(['system', 'developer', 'user', 'assistant']),
    content: z.union([z.string(), z.array(z.object({ type: z.literal('text'), text: z.string() }).strict())]),
    name: z.string().optional(),
  })
  .strict();

export const ChatCompletionRequest = z
  .object({
    ...common,
    messages: z.array(chatMessage).min(1, 'messages must not be empty'),
    max_completion_tokens: z.number().int().positive().nullish(),
    logprobs: z.boolean().nullish(),
    top_logprobs: z.number().int().min(0).max(20).nullish(),
    tools: only(z.array(z.unknown()), undefined, 'tools are not supported'),
    tool_choice: only(z.unknown(), undefined, 'tool_choice is not supported'),
    // vLLM's: extra template variables, and how the conversation ends.
    chat_template_kwargs: templateKwargs.nullish(),
    add_generation_prompt: z.boolean().nullish(),
    continue_final_message: z.boolean().nullish(),
  })
  .strict()
  .refine((r) => !r.top_logprobs || r.logprobs, {
    message: 'top_logprobs needs logprobs: true',
    path: ['top_logprobs'],
  })
  .refine((r) => !(r.add_generation_prompt && r.continue_final_message), {
    message: 'continue_final_message and add_generation_prompt cannot both be true',
    path: ['continue_final_message'],
  });
export type ChatCompletionRequest = z.infer<typeof ChatCompletionRequest>;

/** The most prompts one /v1/completions request may list (each runs n choices). */
const MAX_PROMPTS = 16;
const tokenIds = z.array(z.number().int().nonnegative()).min(1, 'a prompt of token ids must not be empty');

export const CompletionRequest = z
  .object({
    ...common,
    // OpenAI's four shapes: a text, token ids, or a list of either (choices per prompt).
    prompt: z.union([z.string(), tokenIds, z.array(z.string()), z.array(tokenIds)]),
    logprobs: z.number().int().min(0).max(5).nullish(),
    echo: z.boolean().nullish(),
    suffix: only(z.string(), undefined, 'suffix is not supported'),
    best_of: only(z.number().int(), 1, 'best_of is not supported (n gives several choices)'),
  })
  .strict()
  .refine((r) => promptsOf(r.prompt).length <= MAX_PROMPTS, {
    message: `prompt lists ${MAX_PROMPTS} prompts at most`,
    path: ['prompt'],
  })
  .refine((r) => promptsOf(r.prompt).length > 0, { message: 'prompt must not be an empty list', path: ['prompt'] })
  .refine((r) => !(r.echo && r.logprobs !== undefined && r.logprobs !== null), {
    message: "echo with logprobs is not supported (the prompt's logprobs are not computed)",
    path: ['echo'],
  });
export type CompletionRequest = z.infer<typeof CompletionRequest>;

/** A completions request's prompts, each a text or token ids (a single one is a list of one). */
export function promptsOf(prompt: string | number[] | string[] | number[][]): Array<string | number[]> {
  if (typeof prompt === 'string') return [prompt];
  if (prompt.length && typeof prompt[0] === 'number') return [prompt as number[]];
  return prompt as Array<string | number[]>;
}
