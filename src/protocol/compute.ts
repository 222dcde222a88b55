import { z } from 'zod';
import type { GenerateRequest } from '../engine/generation/request.ts';

/**
 * The compute tier's wire contract, shared by the node (src/compute), the edge's client
 * (src/edge/routing) and `versa generate --batch`: one definition of the request, the events and
 * their NDJSON framing, as LoRAX keeps one generate.proto for both tiers.
 *
 * POST /v1/internal/generate takes a GenerateBody and streams NDJSON, one ComputeEvent a line:
 *   {"type":"token","token":ID,"text":"...","logprob"?:X,"top"?:[{token,text,logprob}]}
 *   {"type":"done","finish_reason":"stop"|"length"|"cancelled",
 *    "usage":{prompt_tokens,completion_tokens},"timing":{ttft_ms,total_ms}}
 *   {"type":"error","error":{message,type,code}}            (after the first token only)
 * Failures before the first token are plain HTTP errors with an OpenAI-shaped JSON body, so the
 * edge can retry them on another node. Value ranges are the engine's to check (validateRequest):
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

export const GenerateBody = SamplingFields.extend({
  adapter: AdapterRef.nullish(),
  /** Give up (and free the row) after this long. */
  deadline_ms: z.number().int().positive().optional(),
}).strict();
export type GenerateBody = z.infer<typeof GenerateBody>;

interface TopLogprob {
  token: number;
  text: string;
  logprob: number;
}

export type ComputeEvent =
  | { type: 'token'; token: number; text: string; logprob?: number; top?: TopLogprob[] }
  | {
      type: 'done';
      finish_reason: 'stop' | 'length' | 'cancelled';
      usage: { prompt_tokens: number; completion_tokens: number };
      timing?: { ttft_ms: number; total_ms: number };
    }
  | { type: 'error'; error: { message: string; type: string; code?: string | null } };

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

/**
 * Reads a node's NDJSON stream. A stream that breaks or ends before a `done` or `error` event
 * becomes a final error event: a reader never hangs and never mistakes a cut stream for a whole one.
 */
export async function* readEvents(body: NonNullable<Response['body']>): AsyncGenerator<ComputeEvent> {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  const broken = (message: string): ComputeEvent => ({
    type: 'error',
    error: { message, type: 'server_error', code: 'compute_stream_broken' },
  });
  let buffered = '';
  let ended = false;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffered += value;
      let newline: number;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, newline).trim();
        buffered = buffered.slice(newline + 1);
        if (!line) continue;
        const event = JSON.parse(line) as ComputeEvent;
        if (event.type !== 'token') ended = true;
        yield event;
      }
    }
  } catch (e) {
    if (!ended) yield broken(`the compute node's stream broke: ${(e as Error).message}`);
    return;
  }
  if (!ended) yield broken('the compute node ended the stream early');
}
