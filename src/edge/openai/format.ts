import type { ComputeEvent } from '../../protocol/compute.ts';

/**
 * OpenAI's response objects, built from compute-node events: chat.completion(.chunk) and
 * text_completion, with logprobs in each API's own shape.
 */
type TokenEvent = Extract<ComputeEvent, { type: 'token' }>;
export type FinishReason = 'stop' | 'length';

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
export function chatLogprobs(events: readonly TokenEvent[], top: number) {
  return {
    content: events.map((e) => ({
      token: e.text,
      logprob: e.logprob ?? 0,
      bytes: bytes(e.text),
      top_logprobs: (e.top ?? []).slice(0, top).map((t) => ({ token: t.text, logprob: t.logprob, bytes: bytes(t.text) })),
    })),
  };
}

/** Legacy completions logprobs: parallel arrays plus top alternatives as {token: logprob} maps. */
export function completionLogprobs(events: readonly TokenEvent[], top: number, offset = 0) {
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

export const chat = {
  chunk(who: Identity, delta: { role?: 'assistant'; content?: string }, finish: FinishReason | null, logprobs?: object | null) {
    return {
      id: who.id, object: 'chat.completion.chunk', created: who.created, model: who.model, system_fingerprint: null,
      choices: [{ index: 0, delta, logprobs: logprobs ?? null, finish_reason: finish }],
    };
  },
  usageChunk(who: Identity, u: Usage) {
    return { id: who.id, object: 'chat.completion.chunk', created: who.created, model: who.model, system_fingerprint: null, choices: [], usage: u };
  },
  completion(who: Identity, text: string, finish: FinishReason, u: Usage, logprobs?: object | null) {
    return {
      id: who.id, object: 'chat.completion', created: who.created, model: who.model, system_fingerprint: null,
      choices: [{ index: 0, message: { role: 'assistant', content: text, refusal: null }, logprobs: logprobs ?? null, finish_reason: finish }],
      usage: u,
    };
  },
};

export const text = {
  chunk(who: Identity, piece: string, finish: FinishReason | null, logprobs?: object | null) {
    return {
      id: who.id, object: 'text_completion', created: who.created, model: who.model, system_fingerprint: null,
      choices: [{ index: 0, text: piece, logprobs: logprobs ?? null, finish_reason: finish }],
    };
  },
  usageChunk(who: Identity, u: Usage) {
    return { id: who.id, object: 'text_completion', created: who.created, model: who.model, system_fingerprint: null, choices: [], usage: u };
  },
  completion(who: Identity, piece: string, finish: FinishReason, u: Usage, logprobs?: object | null) {
    return {
      id: who.id, object: 'text_completion', created: who.created, model: who.model, system_fingerprint: null,
      choices: [{ index: 0, text: piece, logprobs: logprobs ?? null, finish_reason: finish }],
      usage: u,
    };
  },
};
