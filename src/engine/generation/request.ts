import { compileResponseFormat, SchemaError, type GrammarNode } from '../structured/schema.ts';

/** What a client asks the engine for, and what it gets back. */
export interface GenerateRequest {
  /** Text, tokenized with the adapter's tokenizer and the tokenizer's template (e.g. BOS). */
  prompt?: string;
  /** Token ids, fed verbatim. */
  promptIds?: number[];
  /** Id of an adapter registered with the engine; null/undefined = the base model. */
  adapter?: string | null;
  maxTokens?: number;
  /** 0 = greedy (the default). */
  temperature?: number;
  topK?: number;
  topP?: number;
  seed?: number;
  stop?: string[];
  stopTokenIds?: number[];
  /** Do not stop at the model's end-of-sequence tokens. */
  ignoreEos?: boolean;
  /** Report the chosen token's logprob plus this many alternatives per step. */
  logprobs?: number;
  /** OpenAI's, in [-2, 2]: minus this times a token's count in the output so far. */
  frequencyPenalty?: number;
  /** OpenAI's, in [-2, 2]: minus this for a token already in the output. */
  presencePenalty?: number;
  /** HF/vLLM's, > 0: a prompt or output token's positive logit divided by it, a negative one multiplied. */
  repetitionPenalty?: number;
  /** vLLM's, in [0, 1]: drop tokens less probable than this times the most probable one. */
  minP?: number;
  /** vLLM's: no end-of-sequence or stop token id before this many tokens. */
  minTokens?: number;
  /** OpenAI's: token id (as a string key) -> bias in [-100, 100] added to its logit; 300 entries at most. */
  logitBias?: Record<string, number>;
  /**
   * OpenAI's response_format: {type: "text" | "json_object"}, or {type: "json_schema", json_schema:
   * {name, schema, strict}}; output is held to it by a token mask (src/engine/structured).
   */
  responseFormat?: unknown;
  /** OpenAI's: choices to generate from the prompt (prefilled once), 1 to MAX_CHOICES; default 1. */
  n?: number;
}

/** The most choices (`n`) one request may ask for: each takes a row of the batch. */
export const MAX_CHOICES = 8;

/** Why a generation ended: the one list, also the compute wire's `finish_reason` (src/protocol/compute.ts). */
export const FINISH_REASONS = ['stop', 'length', 'cancelled'] as const;
export type FinishReason = (typeof FINISH_REASONS)[number];

export interface TokenEvent {
  /** The choice it belongs to when the request asked for n > 1 (absent: choice 0). */
  index?: number;
  token: number;
  /** Text that became final with this token (may be empty mid-character or near a stop string). */
  text: string;
  logprob?: number;
  top?: Array<{ token: number; text: string; logprob: number }>;
  /** Set on the token that ends its choice (a stream of n > 1 can end each choice as it ends). */
  finish?: FinishReason;
}

/** One choice's end, when a request asked for n > 1. */
interface ChoiceResult {
  index: number;
  tokens: number[];
  text: string;
  finishReason: FinishReason;
  completionTokens: number;
}

export interface GenerateResult {
  /** Choice 0's tokens, text and finish (with n > 1, `choices` has each one's). */
  tokens: number[];
  text: string;
  finishReason: FinishReason;
  promptTokens: number;
  /** Summed over the choices. */
  completionTokens: number;
  /** Every choice, in order, when the request asked for n > 1. */
  choices?: ChoiceResult[];
}

/** A request the engine refuses: the client's fault, with a message for the client. */
export class RequestError extends Error {
  override name = 'RequestError';
  constructor(
    message: string,
    /** The request field at fault (OpenAI's `param`). */
    readonly param?: string,
  ) {
    super(message);
  }
}

const DEFAULT_MAX_TOKENS = 256;

/** Checks the sampling fields; returns them with defaults filled in. */
export function validateRequest(r: GenerateRequest) {
  const int = (v: unknown, name: string, min: number) => {
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min)
      throw new RequestError(`${name} must be an integer >= ${min} (got ${JSON.stringify(v)})`, name);
    return v;
  };
  if ((r.prompt === undefined) === (r.promptIds === undefined))
    throw new RequestError('give exactly one of prompt and prompt_ids', 'prompt');
  if (r.prompt !== undefined && typeof r.prompt !== 'string')
    throw new RequestError('prompt must be a string', 'prompt');
  if (r.promptIds !== undefined && (!Array.isArray(r.promptIds) || r.promptIds.length === 0)) {
    throw new RequestError('prompt_ids must be a non-empty array of token ids', 'prompt_ids');
  }
  const temperature = r.temperature ?? 0;
  if (typeof temperature !== 'number' || !Number.isFinite(temperature) || temperature < 0) {
    throw new RequestError(`temperature must be a number >= 0 (got ${JSON.stringify(r.temperature)})`, 'temperature');
  }
  const topP = r.topP ?? 1;
  if (typeof topP !== 'number' || !(topP > 0 && topP <= 1))
    throw new RequestError(`top_p must be in (0, 1] (got ${JSON.stringify(r.topP)})`, 'top_p');
  const stop = r.stop ?? [];
  if (!Array.isArray(stop) || !stop.every((s) => typeof s === 'string' && s.length > 0)) {
    throw new RequestError('stop must be a list of non-empty strings', 'stop');
  }
  const stopTokenIds = r.stopTokenIds ?? [];
  if (!Array.isArray(stopTokenIds) || !stopTokenIds.every((t) => Number.isInteger(t) && t >= 0)) {
    throw new RequestError('stop_token_ids must be a list of token ids', 'stop_token_ids');
  }
  const maxTokens = int(r.maxTokens, 'max_tokens', 1) ?? DEFAULT_MAX_TOKENS;
  const n = int(r.n, 'n', 1) ?? 1;
  if (n > MAX_CHOICES) throw new RequestError(`n must be at most ${MAX_CHOICES} (got ${n})`, 'n');
  const minTokens = int(r.minTokens, 'min_tokens', 0) ?? 0;
  if (minTokens > maxTokens)
    throw new RequestError(`min_tokens ${minTokens} is over max_tokens ${maxTokens}`, 'min_tokens');
  return {
    maxTokens,
    n,
    sampling: {
      temperature,
      topK: int(r.topK, 'top_k', 0) ?? 0,
      topP,
      seed: int(r.seed, 'seed', Number.MIN_SAFE_INTEGER),
      logprobs: int(r.logprobs, 'logprobs', 0),
      frequencyPenalty: inRange(r.frequencyPenalty, 'frequency_penalty', -2, 2),
      presencePenalty: inRange(r.presencePenalty, 'presence_penalty', -2, 2),
      repetitionPenalty: positive(r.repetitionPenalty, 'repetition_penalty'),
      minP: inRange(r.minP, 'min_p', 0, 1),
      minTokens,
      logitBias: logitBias(r.logitBias),
      grammar: responseFormat(r.responseFormat),
    },
    stop,
    stopTokenIds,
  };
}

function inRange(v: unknown, name: string, min: number, max: number): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !(v >= min && v <= max))
    throw new RequestError(`${name} must be a number in [${min}, ${max}] (got ${JSON.stringify(v)})`, name);
  return v;
}

function positive(v: unknown, name: string): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0)
    throw new RequestError(`${name} must be a number > 0 (got ${JSON.stringify(v)})`, name);
  return v;
}

function responseFormat(v: unknown): GrammarNode | undefined {
  try {
    return compileResponseFormat(v);
  } catch (e) {
    if (e instanceof SchemaError) throw new RequestError(e.message, 'response_format');
    throw e;
  }
}

/** The most logit_bias entries a request may carry (OpenAI's limit). */
export const MAX_LOGIT_BIAS = 300;

/** OpenAI's logit_bias {"token id": bias}, as a map; ids are checked against the vocabulary at admission. */
function logitBias(v: unknown): Map<number, number> | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new RequestError('logit_bias must be an object {"token id": bias}', 'logit_bias');
  const entries = Object.entries(v);
  if (entries.length > MAX_LOGIT_BIAS)
    throw new RequestError(`logit_bias has ${entries.length} entries, over ${MAX_LOGIT_BIAS}`, 'logit_bias');
  const out = new Map<number, number>();
  for (const [key, bias] of entries) {
    if (!/^\d{1,9}$/.test(key)) throw new RequestError(`logit_bias key "${key}" is not a token id`, 'logit_bias');
    if (typeof bias !== 'number' || !(bias >= -100 && bias <= 100))
      throw new RequestError(
        `logit_bias["${key}"] must be a number in [-100, 100] (got ${JSON.stringify(bias)})`,
        'logit_bias',
      );
    out.set(Number(key), bias);
  }
  return out;
}
