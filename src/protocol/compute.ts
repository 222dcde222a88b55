import { z } from 'zod';
import { FINISH_REASONS, MAX_CHOICES, type GenerateRequest } from '../engine/generation/request.ts';

/**
 * The compute tier's wire contract, shared by the node (src/compute), the edge's client
 * (src/edge/routing) and `versa generate --batch`: one definition of the request, the events and
 * their NDJSON framing, as LoRAX keeps one generate.proto for both tiers.
 *
 * GET /readyz (no token) answers a ReadyBody: the base the node serves, by the sha256 of its files.
 * POST /v1/internal/tokenize and /v1/internal/detokenize answer JSON (TokenizeBody, DetokenizeBody).
 * POST /v1/internal/generate takes a GenerateBody and streams NDJSON, one ComputeEvent a line:
 *   {"type":"token","token":ID,"text":"...","logprob"?:X,"top"?:[{token,text,logprob}],"index"?:I,
 *    "finish_reason"?:"stop"|"length"}                   (finish_reason: the token ends its choice)
 *   {"type":"done","finish_reason":"stop"|"length"|"cancelled",
 *    "usage":{prompt_tokens,completion_tokens},"timing":{ttft_ms,total_ms},
 *    "choices"?:[{index,finish_reason,completion_tokens}]}
 *   {"type":"error","error":{message,type,code}}            (after the first token only)
 * With n > 1, token events name their choice (`index`, absent = 0), `done` lists each choice's end
 * and its usage counts the prompt once and the choices' tokens summed.
 * Failures before the first token are plain HTTP errors with an OpenAI-shaped JSON body, so the
 * edge can retry them on another node (409 base_mismatch: the node serves other weights than the
 * request's `base`). Value ranges are the engine's to check (validateRequest):
 * the schema checks shapes, so that every tier answers the same words for the same mistake.
 */
const TokenId = z.number().int();

/** Prompt and sampling fields, with OpenAI's names: what every tier's request has. */
export const SamplingFields = z.object({
  prompt: z.string().optional(),
  prompt_ids: z.array(TokenId).optional(),
  max_tokens: z.number().optional(),
  temperature: z.number().optional(),
  top_p: z.number().optional(),
  top_k: z.number().optional(),
  seed: z.number().optional(),
  stop: z.array(z.string()).optional(),
  stop_token_ids: z.array(TokenId).optional(),
  ignore_eos: z.boolean().optional(),
  logprobs: z.number().optional(),
  frequency_penalty: z.number().optional(),
  presence_penalty: z.number().optional(),
  repetition_penalty: z.number().optional(),
  min_p: z.number().optional(),
  min_tokens: z.number().optional(),
  logit_bias: z.record(z.string(), z.number()).optional(),
  response_format: z
    .discriminatedUnion('type', [
      z.strictObject({ type: z.literal('text') }),
      z.strictObject({ type: z.literal('json_object') }),
      z.strictObject({
        type: z.literal('json_schema'),
        json_schema: z.strictObject({
          name: z.string(),
          description: z.string().optional(),
          schema: z.record(z.string(), z.unknown()).optional(),
          strict: z.boolean().nullish(),
        }),
      }),
    ])
    .optional(),
  n: z.number().optional(),
});
export type SamplingFields = z.infer<typeof SamplingFields>;

const Sha256 = z.string().regex(/^[0-9a-f]{64}$/);

/**
 * One file of an adapter version. A node reads it from its own blob folder or registry, never from
 * a URL a request names.
 */
export const AdapterFile = z.strictObject({
  name: z.string().min(1),
  sha256: Sha256,
  bytes: z.number().int().nonnegative(),
});
export type AdapterFile = z.infer<typeof AdapterFile>;

/** An adapter version as the edge names it to a node: its id (e.g. "summarize@3"), content sha256 and files. */
export const AdapterRef = z.strictObject({
  id: z.string().min(1).max(200),
  sha256: Sha256,
  files: z.array(AdapterFile).min(1).max(16),
});
export type AdapterRef = z.infer<typeof AdapterRef>;

/**
 * The base model version a request was resolved to, by the sha256 of its files (the registry's
 * base version sha256): a node serving other weights refuses the request (409 base_mismatch).
 */
const BaseRef = z.strictObject({
  /** NAME@VERSION, for messages. */
  id: z.string().min(1).max(200).optional(),
  sha256: Sha256,
});

export const GenerateBody = SamplingFields.extend({
  /** The edge always sends it; a caller without a registry (bench, tests) may leave it out. */
  base: BaseRef.optional(),
  adapter: AdapterRef.nullish(),
  /** Give up (and free the row) after this long. */
  deadline_ms: z.number().int().positive().optional(),
}).strict();
export type GenerateBody = z.infer<typeof GenerateBody>;

/** The most token ids a /v1/internal/detokenize takes (a context's worth, with room). */
export const MAX_DETOKENIZE_TOKENS = 1 << 17;

/**
 * POST /v1/internal/tokenize: the ids a prompt text becomes on this node (vLLM's /tokenize), under
 * the adapter's tokenizer (its task tokens count); answers a TokenizeReply.
 */
export const TokenizeBody = z.strictObject({
  base: BaseRef.optional(),
  adapter: AdapterRef.nullish(),
  prompt: z.string(),
});
export type TokenizeBody = z.infer<typeof TokenizeBody>;
export const TokenizeReply = z.object({
  tokens: z.array(TokenId),
  count: z.number().int().nonnegative(),
  max_model_len: z.number().int().positive(),
});
export type TokenizeReply = z.infer<typeof TokenizeReply>;

/** POST /v1/internal/detokenize: the text of token ids (vLLM's /detokenize); answers a DetokenizeReply. */
export const DetokenizeBody = z.strictObject({
  base: BaseRef.optional(),
  adapter: AdapterRef.nullish(),
  tokens: z.array(TokenId).max(MAX_DETOKENIZE_TOKENS),
});
export type DetokenizeBody = z.infer<typeof DetokenizeBody>;
export const DetokenizeReply = z.object({ prompt: z.string() });
export type DetokenizeReply = z.infer<typeof DetokenizeReply>;

/** Which of a request's n choices an event is about. */
const ChoiceIndex = z
  .number()
  .int()
  .min(0)
  .max(MAX_CHOICES - 1);

const TopLogprob = z.object({ token: TokenId, text: z.string(), logprob: z.number() });

/**
 * One event of a node's stream, checked by the edge before it uses it (unknown fields are dropped):
 * a node is trusted with the weights, not with what the edge sends on to its clients.
 */
export const ComputeEvent = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('token'),
    token: TokenId,
    text: z.string(),
    logprob: z.number().optional(),
    top: z.array(TopLogprob).max(20).optional(),
    index: ChoiceIndex.optional(),
    /** On the token that ends its choice. */
    finish_reason: z.enum(FINISH_REASONS).optional(),
  }),
  z.object({
    type: z.literal('done'),
    finish_reason: z.enum(FINISH_REASONS),
    usage: z.object({
      prompt_tokens: z.number().int().nonnegative(),
      completion_tokens: z.number().int().nonnegative(),
    }),
    timing: z.object({ ttft_ms: z.number(), total_ms: z.number() }).optional(),
    choices: z
      .array(
        z.object({
          index: ChoiceIndex,
          finish_reason: z.enum(FINISH_REASONS),
          completion_tokens: z.number().int().nonnegative(),
        }),
      )
      .max(MAX_CHOICES)
      .optional(),
  }),
  z.object({
    type: z.literal('error'),
    error: z.object({ message: z.string().max(4096), type: z.string().max(100), code: z.string().max(100).nullish() }),
  }),
]);
export type ComputeEvent = z.infer<typeof ComputeEvent>;

/** The base a node serves: the sha256 of its files as the registry computes a base version's, and its name. */
export const NodeBase = z.object({
  name: z.string().max(200).optional(),
  version: z.number().int().positive().optional(),
  sha256: Sha256,
});
export type NodeBase = z.infer<typeof NodeBase>;

/** GET /readyz of a ready node (no token needed): what it serves. A draining node answers 503. */
export const ReadyBody = z.object({
  status: z.literal('ready'),
  base: NodeBase,
  architecture: z.string(),
});
export type ReadyBody = z.infer<typeof ReadyBody>;

/** The engine's request for wire fields (adapter: the engine's id of an adapter it holds). */
export function toEngineRequest(f: SamplingFields, adapter?: string): GenerateRequest {
  return {
    prompt: f.prompt,
    promptIds: f.prompt_ids,
    adapter,
    maxTokens: f.max_tokens,
    temperature: f.temperature,
    topP: f.top_p,
    topK: f.top_k,
    seed: f.seed,
    stop: f.stop,
    stopTokenIds: f.stop_token_ids,
    ignoreEos: f.ignore_eos,
    logprobs: f.logprobs,
    frequencyPenalty: f.frequency_penalty,
    presencePenalty: f.presence_penalty,
    repetitionPenalty: f.repetition_penalty,
    minP: f.min_p,
    minTokens: f.min_tokens,
    logitBias: f.logit_bias,
    responseFormat: f.response_format,
    n: f.n,
  };
}

/** A zod failure as one line naming the field: `"max_tokens": Expected number, received string`. */
export function describeIssue(error: z.ZodError): { message: string; param: string | null } {
  const issue = error.issues[0];
  const param = issue?.path.length ? issue.path.join('.') : null;
  return { message: `${param ? `"${param}": ` : ''}${issue?.message ?? 'invalid request'}`, param };
}

/** One event as an NDJSON line. */
export const eventLine = (e: ComputeEvent): string => `${JSON.stringify(e)}\n`;

/** The longest line a node may send (a token event with its alternatives is well under 64 KiB). */
const MAX_EVENT_LINE_BYTES = 1024 * 1024;

/**
 * Reads a node's NDJSON stream. A stream that breaks or ends before a `done` or `error` event
 * becomes a final error event: a reader never hangs and never mistakes a cut stream for a whole one.
 * Every line is checked against ComputeEvent, and none may pass `maxLineBytes`: a node that sends
 * anything else (a rogue or broken one) ends the stream with an error event, and is read no further.
 */
export async function* readEvents(
  body: AsyncIterable<Uint8Array>,
  maxLineBytes = MAX_EVENT_LINE_BYTES,
): AsyncGenerator<ComputeEvent> {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const failed = (message: string, code: string): ComputeEvent => ({
    type: 'error',
    error: { message, type: 'server_error', code },
  });
  let pending: Uint8Array[] = []; // the line so far, before its newline
  let pendingBytes = 0;
  /** The event on one line, or the protocol error it is. */
  const parse = (bytes: Uint8Array): ComputeEvent | undefined => {
    let text: string;
    let json: unknown;
    try {
      text = decoder.decode(bytes).trim();
      if (!text) return undefined;
      json = JSON.parse(text);
    } catch {
      return failed('the compute node sent a line that is not JSON', 'compute_protocol_error');
    }
    const event = ComputeEvent.safeParse(json);
    if (event.success) return event.data;
    const { message } = describeIssue(event.error);
    return failed(`the compute node sent an invalid event: ${message}`, 'compute_protocol_error');
  };
  let end: ComputeEvent = failed('the compute node ended the stream early', 'compute_stream_broken');
  try {
    // Leaving this loop before the body's end (the last event, or the caller's return) cancels the rest.
    read: for await (const value of body) {
      let start = 0;
      for (;;) {
        const newline = value.indexOf(10, start);
        const part = value.subarray(start, newline < 0 ? value.length : newline);
        if (pendingBytes + part.length > maxLineBytes) {
          end = failed(`the compute node sent a line over ${maxLineBytes} bytes`, 'compute_protocol_error');
          break read;
        }
        if (newline < 0) {
          if (part.length) pending.push(part);
          pendingBytes += part.length;
          break;
        }
        const line = pending.length ? concat([...pending, part], pendingBytes + part.length) : part;
        pending = [];
        pendingBytes = 0;
        start = newline + 1;
        const event = parse(line);
        if (!event) continue;
        if (event.type !== 'token') {
          end = event; // the end: nothing after it counts
          break read;
        }
        yield event;
      }
    }
  } catch (e) {
    end = failed(`the compute node's stream broke: ${(e as Error).message}`, 'compute_stream_broken');
  }
  yield end;
}

function concat(parts: Uint8Array[], bytes: number): Uint8Array {
  const out = new Uint8Array(bytes);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
