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
}

export type FinishReason = 'stop' | 'length' | 'cancelled';

export interface TokenEvent {
  token: number;
  /** Text that became final with this token (may be empty mid-character or near a stop string). */
  text: string;
  logprob?: number;
  top?: Array<{ token: number; text: string; logprob: number }>;
}

export interface GenerateResult {
  tokens: number[];
  text: string;
  finishReason: FinishReason;
  promptTokens: number;
  completionTokens: number;
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
  return {
    maxTokens: int(r.maxTokens, 'max_tokens', 1) ?? DEFAULT_MAX_TOKENS,
    sampling: {
      temperature,
      topK: int(r.topK, 'top_k', 0) ?? 0,
      topP,
      seed: int(r.seed, 'seed', Number.MIN_SAFE_INTEGER),
      logprobs: int(r.logprobs, 'logprobs', 0),
    },
    stop,
    stopTokenIds,
  };
}
