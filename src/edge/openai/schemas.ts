import { z } from '@hono/zod-openapi';

/**
 * OpenAI request bodies as Versa accepts them. Parameters Versa cannot honour are refused with a
 * clear error rather than silently ignored, unless the value asks for the default (n: 1,
 * presence_penalty: 0, ...). Unknown fields are refused, as OpenAI does.
 */
const stop = z.union([z.string().min(1), z.array(z.string().min(1)).max(4)]).nullish();
const only = <T extends z.ZodTypeAny>(schema: T, value: unknown, why: string) =>
  schema.nullish().refine((v) => v === undefined || v === null || v === value, { message: why });

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
  n: only(z.number().int(), 1, 'only n = 1 is supported'),
  presence_penalty: only(z.number(), 0, 'presence_penalty is not supported'),
  frequency_penalty: only(z.number(), 0, 'frequency_penalty is not supported'),
  logit_bias: only(z.record(z.string(), z.number()), undefined, 'logit_bias is not supported'),
  metadata: z.record(z.string(), z.string()).nullish(),
};

const message = z
  .object({
    role: z.enum(['system', 'developer', 'user', 'assistant']),
    content: z.union([z.string(), z.array(z.object({ type: z.literal('text'), text: z.string() }).strict())]),
    name: z.string().optional(),
  })
  .strict();

export const ChatCompletionRequest = z
  .object({
    ...common,
    messages: z.array(message).min(1, 'messages must not be empty'),
    max_completion_tokens: z.number().int().positive().nullish(),
    logprobs: z.boolean().nullish(),
    top_logprobs: z.number().int().min(0).max(20).nullish(),
    tools: only(z.array(z.unknown()), undefined, 'tools are not supported'),
    tool_choice: only(z.unknown(), undefined, 'tool_choice is not supported'),
    response_format: z.object({ type: z.literal('text') }).nullish(),
  })
  .strict()
  .refine((r) => !r.top_logprobs || r.logprobs, {
    message: 'top_logprobs needs logprobs: true',
    path: ['top_logprobs'],
  });
export type ChatCompletionRequest = z.infer<typeof ChatCompletionRequest>;

export const CompletionRequest = z
  .object({
    ...common,
    prompt: z.union([z.string(), z.array(z.number().int().nonnegative()).min(1)]),
    logprobs: z.number().int().min(0).max(5).nullish(),
    echo: only(z.boolean(), false, 'echo is not supported'),
    suffix: only(z.string(), undefined, 'suffix is not supported'),
    best_of: only(z.number().int(), 1, 'only best_of = 1 is supported'),
  })
  .strict();
export type CompletionRequest = z.infer<typeof CompletionRequest>;

/** A score is finite and within +-1e6 (summable); an experiment's declared metric bounds it further. */
const MAX_ABS_SCORE = 1e6;
export const FeedbackRequest = z
  .object({
    completion_id: z.string().min(1).max(100),
    score: z.number().min(-MAX_ABS_SCORE).max(MAX_ABS_SCORE),
    /** Which of the experiment's declared metrics (default: its primary one). */
    metric: z.string().min(1).max(64).optional(),
  })
  .strict();
