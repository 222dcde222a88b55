import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer as HfTokenizerImpl } from '@huggingface/tokenizers';
import { TokenizerError, windowedStreamDecoder, type StreamDecoder, type Tokenizer } from './types.ts';

/** A Hugging Face tokenizer.json, through tokenizers.js (@huggingface/tokenizers). */
export class HfTokenizer implements Tokenizer {
  readonly template: { prefix: number[]; suffix: number[] };
  readonly size: number;
  readonly stopIds: number[];

  private constructor(
    private readonly impl: HfTokenizerImpl,
    config: Record<string, unknown>,
  ) {
    this.size = impl.get_vocab(true).size;
    // The special ids encode() adds are what it adds around an empty-ish text.
    const withSpecial = impl.encode('a').ids;
    const plain = impl.encode('a', { add_special_tokens: false }).ids;
    const at = indexOfRun(withSpecial, plain);
    this.template =
      at < 0
        ? { prefix: [], suffix: [] }
        : { prefix: withSpecial.slice(0, at), suffix: withSpecial.slice(at + plain.length) };
    const eos =
      typeof config.eos_token === 'string'
        ? config.eos_token
        : (config.eos_token as { content?: string } | undefined)?.content;
    const eosId = eos === undefined ? undefined : impl.token_to_id(eos);
    this.stopIds = eosId === undefined ? [] : [eosId];
  }

  /** `path` is a tokenizer.json file or a folder holding one (and maybe tokenizer_config.json). */
  static fromPath(path: string): HfTokenizer {
    const file = path.endsWith('.json') ? path : join(path, 'tokenizer.json');
    if (!existsSync(file)) throw new TokenizerError(`${path}: no tokenizer.json`);
    const configFile = join(file, '..', 'tokenizer_config.json');
    const config = existsSync(configFile) ? readJson(configFile) : {};
    try {
      return new HfTokenizer(new HfTokenizerImpl(readJson(file), config), config);
    } catch (e) {
      if (e instanceof TokenizerError) throw e;
      throw new TokenizerError(`${file}: cannot build the tokenizer (${(e as Error).message})`);
    }
  }

  encode(text: string): number[] {
    return this.impl.encode(text).ids;
  }

  encodePlain(text: string): number[] {
    return this.impl.encode(text, { add_special_tokens: false }).ids;
  }

  decode(ids: readonly number[]): string {
    // tokenizers.js throws on an empty list; nothing (e.g. only an adapter's task tokens) is "".
    if (!ids.length) return '';
    return this.impl.decode([...ids], { skip_special_tokens: true });
  }

  streamDecoder(context: readonly number[]): StreamDecoder {
    // An id this tokenizer does not know (an adapter's task token) starts a fresh text segment.
    let start = context.length;
    while (start > 0 && context[start - 1] >= 0 && context[start - 1] < this.size) start--;
    return windowedStreamDecoder((ids) => this.decode(ids), context.slice(start));
  }

  tokenText(id: number): string {
    return this.decode([id]) || (this.impl.id_to_token(id) ?? '');
  }
}

function readJson(path: string): Record<string, unknown> {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new TokenizerError(`${path}: invalid JSON (${(e as Error).message})`);
  }
}

function indexOfRun(haystack: number[], needle: number[]): number {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}
