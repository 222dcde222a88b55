import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer as HfTokenizerImpl } from '@huggingface/tokenizers';
import { TokenizerError, windowedStreamDecoder, type StreamDecoder, type Tokenizer } from './types.ts';

/** A Hugging Face tokenizer.json, through tokenizers.js (@huggingface/tokenizers). */
export class HfTokenizer implements Tokenizer {
  readonly template: { prefix: number[]; suffix: number[] };
  readonly size: number;
  readonly stopIds: number[];
  readonly maxTokenBytes: number;
  /** How a vocabulary piece becomes bytes (tokenBytes). */
  private readonly pieces: PieceBytes;

  private constructor(
    private readonly impl: HfTokenizerImpl,
    config: Record<string, unknown>,
    json: Record<string, unknown>,
  ) {
    const vocab = impl.get_vocab(true);
    this.size = vocab.size;
    this.maxTokenBytes = maxTokenBytes(vocab.keys(), json);
    this.pieces = pieceBytes(json);
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
      const json = readJson(file);
      return new HfTokenizer(new HfTokenizerImpl(json, config), config, json);
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

  tokenBytes(id: number): Uint8Array | undefined {
    const added = this.pieces.added.get(id);
    if (added !== undefined) return added ?? undefined;
    const piece = this.impl.id_to_token(id);
    if (piece === undefined || piece === null) return undefined;
    if (this.pieces.kind === 'byteLevel') {
      const chars = [...piece];
      return chars.every((c) => BYTE_LEVEL.has(c))
        ? Uint8Array.from(chars, (c) => BYTE_LEVEL.get(c)!)
        : utf8.encode(piece);
    }
    if (this.pieces.kind === 'metaspace') {
      const byte = /^<0x([0-9A-Fa-f]{2})>$/.exec(piece);
      if (byte && this.pieces.byteFallback) return Uint8Array.of(parseInt(byte[1], 16));
      return utf8.encode(piece.replaceAll(this.pieces.space, ' '));
    }
    // Any other decoder: the token's own text, if it stands alone (no partial character).
    const text = this.decode([id]);
    return text && !text.includes('\uFFFD') ? utf8.encode(text) : undefined;
  }
}

const utf8 = new TextEncoder();

/**
 * How a tokenizer.json's pieces map to bytes: byte-level BPE (GPT-2's printable stand-ins for
 * bytes), sentencepiece-like ("▁" for a space, "<0xNN>" byte fallback), or neither (decoded per
 * id). Added tokens map to their content, special ones to nothing (decode skips them).
 */
interface PieceBytes {
  kind: 'byteLevel' | 'metaspace' | 'other';
  space: string;
  byteFallback: boolean;
  added: Map<number, Uint8Array | null>;
}

function pieceBytes(json: Record<string, unknown>): PieceBytes {
  type Decoder = { type?: string; decoders?: Decoder[]; replacement?: string; pattern?: { String?: string } };
  const top = json.decoder as Decoder | null | undefined;
  const decoders = top?.type === 'Sequence' ? (top.decoders ?? []) : top ? [top] : [];
  const model = json.model as { byte_fallback?: boolean } | undefined;
  const metaspace = decoders.find((d) => d.type === 'Metaspace');
  const replace = decoders.find((d) => d.type === 'Replace' && d.pattern?.String === '\u2581');
  const byteLevel = decoders.some((d) => d.type === 'ByteLevel');
  const kind = byteLevel ? 'byteLevel' : metaspace || replace ? 'metaspace' : 'other';
  const added = new Map<number, Uint8Array | null>();
  for (const t of (json.added_tokens ?? []) as Array<{ id: number; content: string; special?: boolean }>) {
    added.set(t.id, t.special ? null : utf8.encode(t.content));
  }
  return {
    kind,
    space: metaspace?.replacement ?? '\u2581',
    byteFallback: !!model?.byte_fallback || decoders.some((d) => d.type === 'ByteFallback'),
    added,
  };
}

/** GPT-2's bytes_to_unicode, reversed: the character standing for each byte -> the byte. */
const BYTE_LEVEL = (() => {
  const map = new Map<string, number>();
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    map.set(String.fromCharCode(printable ? b : 256 + extra++), b);
  }
  return map;
})();

/**
 * The most text bytes one token can stand for, from the vocabulary's pieces: a byte-level piece has
 * one character per byte; otherwise a piece's UTF-8 bytes bound its text ("▁" and "<0xNN>" stand
 * for one byte, which only makes the bound looser). A normalizer that can shrink text (Unicode
 * forms, accents, cleanup) may map up to about 4 input bytes to one, so such tokenizers get 4x room.
 * An unknown token can stand for a whole word (WordPiece) or a run of unknown characters
 * (`fuse_unk` without `byte_fallback`): there the bound is a generous 256 bytes a token, not a
 * guarantee.
 */
function maxTokenBytes(pieces: Iterable<string>, json: Record<string, unknown>): number {
  const utf8 = new TextEncoder();
  const byteLevel = (json.decoder as { type?: string } | null)?.type === 'ByteLevel';
  const model = json.model as { type?: string; fuse_unk?: boolean; byte_fallback?: boolean } | undefined;
  let longest = model?.type === 'WordPiece' || (model?.fuse_unk && !model.byte_fallback) ? 256 : 1;
  for (const piece of pieces) longest = Math.max(longest, byteLevel ? piece.length : utf8.encode(piece).length);
  return longest * (shrinks(json.normalizer) ? 4 : 1);
}

/** Whether a normalizer (or one in a sequence) can make text shorter. */
function shrinks(normalizer: unknown): boolean {
  const n = normalizer as { type?: string; normalizers?: unknown[] } | null | undefined;
  if (!n?.type) return false;
  if (n.type === 'Sequence') return (n.normalizers ?? []).some(shrinks);
  return !['Prepend', 'Replace', 'Lowercase'].includes(n.type);
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
