import type { Adapter } from '../adapters/read.ts';
import type { StreamDecoder, Tokenizer } from '../tokenizer/types.ts';
import { Sampler, type SamplingParams } from './sampler.ts';
import { StopMatcher } from './stop.ts';
import { JsonConstraint } from '../structured/constraint.ts';
import { Vocabulary } from '../structured/vocabulary.ts';
import type { FinishReason, GenerateResult, TokenEvent } from './request.ts';

export interface SequenceSink {
  onTokens(events: TokenEvent[]): void;
  onDone(result: GenerateResult): void;
  onError(error: Error): void;
}

/**
 * One request's life in the engine: its prompt, where it sits in the KV cache, what it has
 * generated, and the per-request sampler, detokenizer and stop matcher.
 */
export class Sequence {
  /** Cache row while running, -1 otherwise. */
  row = -1;
  /** Tokens already stored in the KV cache. */
  cached = 0;
  readonly generated: number[] = [];
  private text = '';
  finish?: FinishReason;
  /** The request's other choices (n > 1), until the prompt is in: they start from its logits and cache row. */
  readonly forks: Sequence[] = [];
  private readonly sampler: Sampler;
  private readonly detokenizer: StreamDecoder;
  private readonly stops: StopMatcher;
  private readonly stopIds: Set<number>;
  /** Until this many tokens are out, stop tokens cannot be chosen (vLLM's min_tokens). */
  private readonly minTokens: number;
  /** Structured output (response_format): the grammar's state and token mask. */
  private readonly constraint?: JsonConstraint;

  constructor(
    readonly id: string,
    readonly prompt: readonly number[],
    readonly adapter: Adapter | undefined,
    private readonly tokenizer: Tokenizer,
    sampling: SamplingParams,
    /** New tokens allowed, already capped by the context length. */
    readonly maxTokens: number,
    stop: readonly string[],
    stopIds: readonly number[],
    private readonly sink: SequenceSink,
  ) {
    this.sampler = new Sampler(sampling, prompt);
    this.minTokens = sampling.minTokens ?? 0;
    this.detokenizer = tokenizer.streamDecoder(prompt);
    this.stops = new StopMatcher(stop);
    this.stopIds = new Set(stopIds);
    if (sampling.grammar) {
      const bytes = (id: number) => tokenizer.tokenBytes(id);
      this.constraint = new JsonConstraint(sampling.grammar, Vocabulary.of(tokenizer), bytes);
    }
  }

  get prefilling(): boolean {
    return this.cached < this.prompt.length;
  }

  /** Tokens to feed next: a chunk of the prompt, or the last generated token. */
  nextInput(chunk: number): number[] {
    if (this.prefilling) return this.prompt.slice(this.cached, this.cached + chunk);
    return [this.generated[this.generated.length - 1]];
  }

  /** Takes the logits of the last fed token (after `fed` tokens went into the cache). */
  advance(fed: number, logits: Float32Array): TokenEvent | undefined {
    this.cached += fed;
    if (this.prefilling) return undefined;
    const allowed = this.constraint?.allowed(this.stopIds);
    if (allowed && !allowed.subarray(0, logits.length).includes(1)) {
      this.finish = 'length'; // the vocabulary cannot continue the value: it stays cut, as by max_tokens
      return undefined;
    }
    const suppress = this.generated.length < this.minTokens ? this.stopIds : undefined;
    const choice = this.sampler.sample(logits, suppress, allowed);
    this.generated.push(choice.token);
    let text: string;
    if (this.stopIds.has(choice.token)) {
      this.finish = 'stop'; // the stop token's own text is not part of the output
      text = this.drain();
    } else {
      const { emit, stopped } = this.stops.push(this.detokenizer.push(choice.token));
      text = emit;
      const structured = this.constraint && this.structuredEnd(choice.token);
      if (stopped) this.finish = 'stop';
      else if (structured) {
        this.finish = structured;
        text += this.drain();
      } else if (this.generated.length >= this.maxTokens) {
        this.finish = 'length';
        text += this.drain();
      }
    }
    this.text += text;
    return {
      token: choice.token,
      text,
      logprob: choice.logprob,
      top: choice.top?.map((t) => ({ token: t.token, text: this.tokenizer.tokenText(t.token), logprob: t.logprob })),
      ...(this.finish && { finish: this.finish }),
    };
  }

  /**
   * Structured output after a token: 'stop' once the value is complete and nothing may follow it
   * (the row ends at once, no end-of-sequence token needed); 'length' if the token left the
   * grammar, which the mask prevents unless every allowed token was masked by other parameters.
   */
  private structuredEnd(token: number): FinishReason | undefined {
    if (!this.constraint!.accept(token)) return 'length';
    return this.constraint!.closed ? 'stop' : undefined;
  }

  /** Text held back at the end: an incomplete character, or what looked like a stop string. */
  private drain(): string {
    const { emit, stopped } = this.stops.push(this.detokenizer.flush());
    return stopped ? emit : emit + this.stops.flush();
  }

  emit(events: TokenEvent[]): void {
    this.sink.onTokens(events);
  }

  complete(reason?: FinishReason): void {
    for (const fork of this.forks.splice(0)) fork.complete(reason);
    this.finish ??= reason ?? 'length';
    this.sink.onDone({
      tokens: [...this.generated],
      text: this.text,
      finishReason: this.finish,
      promptTokens: this.prompt.length,
      completionTokens: this.generated.length,
    });
  }

  fail(error: Error): void {
    for (const fork of this.forks.splice(0)) fork.fail(error);
    this.sink.onError(error);
  }
}
