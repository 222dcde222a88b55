import { TokenizerError, type StreamDecoder, type Tokenizer } from './types.ts';

/**
 * A base tokenizer plus one adapter's task tokens (e.g. "<|max|>"), whose ids follow the model's
 * vocabulary: firstId, firstId + 1, ... The same text encodes differently under different adapters,
 * and only the adapter that owns a task token knows it.
 */
export class TaskTokenizer implements Tokenizer {
  private readonly pattern: RegExp;
  readonly maxTokenBytes: number;

  constructor(
    private readonly base: Tokenizer,
    /** The model's vocabulary size: the id of the first task token. */
    private readonly firstId: number,
    private readonly tokens: readonly string[],
  ) {
    const escaped = [...tokens]
      .sort((a, b) => b.length - a.length)
      .map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
    this.pattern = new RegExp(`(${escaped.join('|')})`);
    this.maxTokenBytes = Math.max(base.maxTokenBytes, ...tokens.map((t) => new TextEncoder().encode(t).length));
  }

  get size(): number {
    return this.firstId + this.tokens.length;
  }
  get stopIds(): readonly number[] {
    return this.base.stopIds;
  }
  get template() {
    return this.base.template;
  }

  encode(text: string): number[] {
    return [...this.template.prefix, ...this.encodePlain(text), ...this.template.suffix];
  }

  encodePlain(text: string): number[] {
    const ids: number[] = [];
    for (const part of text.split(this.pattern)) {
      const k = this.tokens.indexOf(part);
      if (k >= 0) {
        ids.push(this.firstId + k);
        continue;
      }
      if (!part) continue;
      for (const id of this.base.encodePlain(part)) {
        if (id >= this.firstId)
          throw new TokenizerError(
            `the text encodes to token id ${id}, outside the model's ${this.firstId}-token vocabulary`,
          );
        ids.push(id);
      }
    }
    return ids;
  }

  decode(ids: readonly number[]): string {
    const d = this.streamDecoder([]);
    return ids.map((id) => d.push(id)).join('') + d.flush();
  }

  streamDecoder(context: readonly number[]): StreamDecoder {
    // The base sees a task token as -1: a token it does not know, which ends its text segment.
    let inner = this.base.streamDecoder(context.map((id) => (this.isTask(id) ? -1 : id)));
    return {
      push: (id) => {
        if (!this.isTask(id)) return inner.push(id);
        const text = inner.flush() + this.tokens[id - this.firstId];
        inner = this.base.streamDecoder([-1]);
        return text;
      },
      flush: () => inner.flush(),
    };
  }

  tokenText(id: number): string {
    return this.isTask(id) ? this.tokens[id - this.firstId] : this.base.tokenText(id);
  }

  tokenBytes(id: number): Uint8Array | undefined {
    return this.isTask(id) ? undefined : this.base.tokenBytes(id);
  }

  private isTask(id: number): boolean {
    return id >= this.firstId && id < this.firstId + this.tokens.length;
  }
}
