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

/** One choice of a whole response: its tokens, how it ended, and (echo) the prompt text before them. */
export interface ChoiceOutput {
  index: number;
  tokens: readonly TokenEvent[];
  finish: OpenAIFinishReason;
  echo?: string;
}

const chat = {
  chunk(
    who: Identity,
    delta: { role?: 'assistant'; content?: string },
    finish: OpenAIFinishReason | null,
    logprobs?: object | null,
    index = 0,
  ) {
    return {
      id: who.id,
      object: 'chat.completion.chunk',
      created: who.created,
      model: who.model,
      system_fingerprint: null,
      choices: [{ index, delta, logprobs: logprobs ?? null, finish_reason: finish }],
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
  completion(who: Identity, choices: readonly ChoiceOutput[], u: Usage, top: number | undefined) {
    return {
      id: who.id,
      object: 'chat.completion',
      created: who.created,
      model: who.model,
      system_fingerprint: null,
      choices: choices.map((c) => ({
        index: c.index,
        message: { role: 'assistant', content: joined(c.tokens), refusal: null },
        logprobs: top === undefined ? null : chatLogprobs(c.tokens, top),
        finish_reason: c.finish,
      })),
      usage: u,
    };
  },
};

const text = {
  chunk(who: Identity, piece: string, finish: OpenAIFinishReason | null, logprobs?: object | null, index = 0) {
    return {
      id: who.id,
      object: 'text_completion',
      created: who.created,
      model: who.model,
      system_fingerprint: null,
      choices: [{ index, text: piece, logprobs: logprobs ?? null, finish_reason: finish }],
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
  completion(who: Identity, choices: readonly ChoiceOutput[], u: Usage, top: number | undefined) {
    return {
      id: who.id,
      object: 'text_completion',
      created: who.created,
      model: who.model,
      system_fingerprint: null,
      choices: choices.map((c) => ({
        index: c.index,
        text: (c.echo ?? '') + joined(c.tokens),
        logprobs: top === undefined ? null : completionLogprobs(c.tokens, top),
        finish_reason: c.finish,
      })),
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
  /**
   * The chunk a choice's stream opens with, if any: chat announces the assistant's role, a
   * completion with echo sends the prompt's text.
   */
  opening(who: Identity, index: number, echo?: string): object | null;
  /**
   * A token's chunk, for its choice (`e.index`); `top` alternatives when logprobs were asked for;
   * `offset`: the choice's text streamed before it.
   */
  token(who: Identity, e: TokenEvent, top: number | undefined, offset: number): object;
  final(who: Identity, finish: OpenAIFinishReason, index: number): object;
  usageChunk(who: Identity, u: Usage): object;
  whole(who: Identity, choices: readonly ChoiceOutput[], u: Usage, top: number | undefined): object;
}

const joined = (tokens: readonly TokenEvent[]) => tokens.map((t) => t.text).join('');

export const FORMATS: Record<'chat' | 'text', ResponseFormat> = {
  chat: {
    idPrefix: 'chatcmpl',
    opening: (who, index) => chat.chunk(who, { role: 'assistant', content: '' }, null, null, index),
    token: (who, e, top) =>
      chat.chunk(who, { content: e.text }, null, top === undefined ? null : chatLogprobs([e], top), e.index),
    final: (who, finish, index) => chat.chunk(who, {}, finish, null, index),
    usageChunk: chat.usageChunk,
    whole: chat.completion,
  },
  text: {
    idPrefix: 'cmpl',
    defaultMaxTokens: 16,
    opening: (who, index, echo) => (echo ? text.chunk(who, echo, null, null, index) : null),
    token: (who, e, top, offset) =>
      text.chunk(who, e.text, null, top === undefined ? null : completionLogprobs([e], top, offset), e.index),
    final: (who, finish, index) => text.chunk(who, '', finish, null, index),
    usageChunk: text.usageChunk,
    whole: text.completion,
  },
};
