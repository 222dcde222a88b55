import type { FinishReason } from '../../engine/generation/request.ts';
import type { ComputeEvent } from '../../protocol/compute.ts';

/**
 * OpenAI's response objects, built from compute-node events: chat.completion(.chunk) and
 * text_completion, with logprobs in each API's own shape.
 */
type TokenEvent = Extract<ComputeEvent, { type: 'token' }>;
/** OpenAI's finish_reason: a generation the node cancelled reaches the client as an error, not a finish. */
export type OpenAIFinishReason = Exclude<FinishReason, 'cancelled'>;

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export function usage(prompt: number, completion: number): Usage {
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

const bytes = (text: string) => [...new TextEncoder().encode(text)];

/** Chat logprobs: {content: [{token, logprob, bytes, top_logprobs}]}. */
function chatLogprobs(events: readonly TokenEvent[], top: number) {
  return {
    content: events.map((e) => ({
      token: e.text,
      logprob: e.logprob ?? 0,
      bytes: bytes(e.text),
      top_logprobs: (e.top ?? [])
        .slice(0, top)
        .map((t) => ({ token: t.text, logprob: t.logprob, bytes: bytes(t.text) })),
    })),
  };
}

/** Legacy completions logprobs: parallel arrays plus top alternatives as {token: logprob} maps. */
function completionLogprobs(events: readonly TokenEvent[], top: number, offset = 0) {
  let at = offset;
  return {
    tokens: events.map((e) => e.text),
    token_logprobs: events.map((e) => e.logprob ?? 0),
    top_logprobs: events.map((e) => Object.fromEntries((e.top ?? []).slice(0, top).map((t) => [t.text, t.logprob]))),
    text_offset: events.map((e) => {
      const here = at;
      at += e.text.length;
      return here;
    }),
  };
}

export interface Identity {
  id: string;
  created: number;
  model: string;
}

const chat = {
  chunk(
    who: Identity,
    delta: { role?: 'assistant'; content?: string },
    finish: OpenAIFinishReason | null,
    logprobs?: object | null,
  ) {
    return {
      id: who.id,
      object: 'chat.completion.chunk',
      created: who.created,
      model: who.model,
      system_fingerprint: null,
      choices: [{ index: 0, delta, logprobs: logprobs ?? null, finish_reason: finish }],
    };
  },
  usageChunk(who: Identity, u: Usage) {
    return {
      id: who.id,
      object: 'chat.completion.chunk',
      created: who.created,
      model: who.model,
      system_fingerprint: null,
      choices: [],
      usage: u,
    };
  },
  completion(who: Identity, text: string, finish: OpenAIFinishReason, u: Usage, logprobs?: object | null) {
    return {
      id: who.id,
      object: 'chat.completion',
      created: who.created,
      model: who.model,
      system_fingerprint: null,
      choices: [
        {
          index: 0,
          message: { role: 'assistant', content: text, refusal: null },
          logprobs: logprobs ?? null,
          finish_reason: finish,
        },
      ],
      usage: u,
    };
  },
};

const text = {
  chunk(who: Identity, piece: string, finish: OpenAIFinishReason | null, logprobs?: object | null) {
    return {
      id: who.id,
      object: 'text_completion',
      created: who.created,
      model: who.model,
      system_fingerprint: null,
      choices: [{ index: 0, text: piece, logprobs: logprobs ?? null, finish_reason: finish }],
    };
  },
  usageChunk(who: Identity, u: Usage) {
    return {
      id: who.id,
      object: 'text_completion',
      created: who.created,
      model: who.model,
      system_fingerprint: null,
      choices: [],
      usage: u,
    };
  },
  completion(who: Identity, piece: string, finish: OpenAIFinishReason, u: Usage, logprobs?: object | null) {
    return {
      id: who.id,
      object: 'text_completion',
      created: who.created,
      model: who.model,
      system_fingerprint: null,
      choices: [{ index: 0, text: piece, logprobs: logprobs ?? null, finish_reason: finish }],
      usage: u,
    };
  },
};

/**
 * How one API (chat or completions) shapes a completion: the id's prefix, the stream's chunks and
 * the whole response. complete() runs either through this one interface.
 */
export interface ResponseFormat {
  idPrefix: string;
  /** max_tokens when the request has none (OpenAI: 16 for completions; chat: the deployment's limit). */
  defaultMaxTokens?: number;
  /** The chunk a stream opens with, if any (chat announces the assistant's role). */
  opening(who: Identity): object | null;
  /** A token's chunk; `top` alternatives when logprobs were asked for; `offset`: text streamed before it. */
  token(who: Identity, e: TokenEvent, top: number | undefined, offset: number): object;
  final(who: Identity, finish: OpenAIFinishReason): object;
  usageChunk(who: Identity, u: Usage): object;
  whole(
    who: Identity,
    tokens: readonly TokenEvent[],
    finish: OpenAIFinishReason,
    u: Usage,
    top: number | undefined,
  ): object;
}

const joined = (tokens: readonly TokenEvent[]) => tokens.map((t) => t.text).join('');

export const FORMATS: Record<'chat' | 'text', ResponseFormat> = {
  chat: {
    idPrefix: 'chatcmpl',
    opening: (who) => chat.chunk(who, { role: 'assistant', content: '' }, null),
    token: (who, e, top) =>
      chat.chunk(who, { content: e.text }, null, top === undefined ? null : chatLogprobs([e], top)),
    final: (who, finish) => chat.chunk(who, {}, finish),
    usageChunk: chat.usageChunk,
    whole: (who, tokens, finish, u, top) =>
      chat.completion(who, joined(tokens), finish, u, top === undefined ? null : chatLogprobs(tokens, top)),
  },
  text: {
    idPrefix: 'cmpl',
    defaultMaxTokens: 16,
    opening: () => null,
    token: (who, e, top, offset) =>
      text.chunk(who, e.text, null, top === undefined ? null : completionLogprobs([e], top, offset)),
    final: (who, finish) => text.chunk(who, '', finish),
    usageChunk: text.usageChunk,
    whole: (who, tokens, finish, u, top) =>
      text.completion(who, joined(tokens), finish, u, top === undefined ? null : completionLogprobs(tokens, top)),
  },
};
