/** What the engine needs from a tokenizer; llama2.c's and Hugging Face's both implement it. */
export interface Tokenizer {
  /** Number of ids the tokenizer itself knows (may differ from the model's vocabulary). */
  readonly size: number;
  /** Stop tokens the tokenizer's model family uses by default. */
  readonly stopIds: readonly number[];
  /** Text -> ids, with the tokenizer's own template (e.g. a leading BOS). */
  encode(text: string): number[];
  /** Text -> ids, with no special tokens added. */
  encodePlain(text: string): number[];
  /** The special ids `encode` puts before and after the text. */
  readonly template: { prefix: number[]; suffix: number[] };
  /**
   * The most text bytes one token stands for (its longest piece): a text of more than n times this
   * many bytes encodes to more than n tokens, which bounds a prompt before it is tokenized.
   */
  readonly maxTokenBytes: number;
  /** Ids -> text of those ids alone (as if they started a sequence). */
  decode(ids: readonly number[]): string;
  /**
   * Incremental decoding of generated ids that follow `context` (e.g. the prompt). An id of -1 in
   * the context stands for a token this tokenizer does not know (an adapter's task token).
   */
  streamDecoder(context: readonly number[]): StreamDecoder;
  /** The surface form of one token, for logprobs. */
  tokenText(id: number): string;
  /**
   * The bytes `id` adds to generated text (mid-sequence: a sentencepiece word's leading space kept);
   * undefined for an id that adds none or none fixed (special and task tokens). Structured output
   * builds its token masks from these.
   */
  tokenBytes(id: number): Uint8Array | undefined;
}

export interface StreamDecoder {
  /** Feeds one id; returns the text that is now final (may be "" mid-character). */
  push(id: number): string;
  /** Whatever is still held back (an incomplete character at the very end). */
  flush(): string;
}

export class TokenizerError extends Error {
  override name = 'TokenizerError';
}

/**
 * Incremental detokenization for tokenizers that can only decode whole id lists (vLLM's
 * prefix/read-offset method): decode a short window before and after the new id, emit the
 * difference, and hold text back while it ends in an incomplete character (U+FFFD).
 */
export function windowedStreamDecoder(decode: (ids: number[]) => string, context: readonly number[]): StreamDecoder {
  const ids = context.slice(-6);
  let prefixOffset = 0;
  let readOffset = ids.length;
  let pending = '';
  return {
    push(id) {
      ids.push(id);
      const prefixText = decode(ids.slice(prefixOffset, readOffset));
      const newText = decode(ids.slice(prefixOffset));
      if (newText.length > prefixText.length && !newText.endsWith('\uFFFD')) {
        const delta = newText.slice(prefixText.length);
        prefixOffset = readOffset;
        readOffset = ids.length;
        pending = '';
        return delta;
      }
      pending = newText.slice(prefixText.length);
      return '';
    },
    flush() {
      const rest = pending;
      pending = '';
      return rest;
    },
  };
}
