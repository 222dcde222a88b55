import { readFileSync } from 'node:fs';
import { TokenizerError, type StreamDecoder, type Tokenizer } from './types.ts';

const BOS = 1;
const EOS = 2;
const BYTE_OFFSET = 3; // byte-fallback ids: <0x00> = 3 ... <0xFF> = 258

/**
 * llama2.c's tokenizer.bin, encoded and decoded exactly as llama2.c's run.c does: a dummy-prefix
 * space, UTF-8 code points looked up whole (else byte fallback), then greedy merges of the
 * adjacent pair whose merged piece scores highest (leftmost on ties). Hand-written: no library
 * implements this score-greedy variant.
 */
export class Llama2cTokenizer implements Tokenizer {
  readonly stopIds = [BOS, EOS];
  readonly template = { prefix: [BOS], suffix: [] };
  readonly maxTokenBytes: number;
  private readonly ids = new Map<string, number>();
  /** Pieces are byte strings; a latin1 string holds one per char, for Map keys. */
  private readonly keys: string[];

  constructor(
    private readonly pieces: Uint8Array[],
    private readonly scores: Float32Array,
  ) {
    this.keys = pieces.map(latin1);
    this.maxTokenBytes = pieces.reduce((n, p) => Math.max(n, p.length), 1);
    this.keys.forEach((key, id) => {
      if (!this.ids.has(key)) this.ids.set(key, id);
    });
  }

  static fromFile(path: string): Llama2cTokenizer {
    const buf = readFileSync(path);
    const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    if (buf.byteLength < 4) throw new TokenizerError(`${path}: not a llama2.c tokenizer (too small)`);
    let at = 4; // int32 max_token_length, unused
    const pieces: Uint8Array[] = [];
    const scores: number[] = [];
    while (at < buf.byteLength) {
      if (at + 8 > buf.byteLength) throw new TokenizerError(`${path}: truncated at byte ${at}`);
      const score = view.getFloat32(at, true);
      const len = view.getInt32(at + 4, true);
      at += 8;
      if (len < 0 || at + len > buf.byteLength)
        throw new TokenizerError(`${path}: bad piece length ${len} at byte ${at - 4}`);
      pieces.push(new Uint8Array(buf.subarray(at, at + len)));
      scores.push(score);
      at += len;
    }
    if (pieces.length < BYTE_OFFSET + 256)
      throw new TokenizerError(
        `${path}: only ${pieces.length} pieces; llama2.c tokenizers have byte fallback ids 3..258`,
      );
    return new Llama2cTokenizer(pieces, Float32Array.from(scores));
  }

  get size(): number {
    return this.pieces.length;
  }

  encode(text: string): number[] {
    return [BOS, ...this.encodePlain(text)];
  }

  encodePlain(text: string): number[] {
    // run.c reads a C string, so it never sees a NUL; here a NUL is text like any other byte (its
    // byte-fallback token <0x00>) instead of silently cutting the prompt short.
    const input = new TextEncoder().encode(text);
    const tokens: number[] = [];
    if (input.length > 0) tokens.push(this.lookup(' '));
    for (let i = 0; i < input.length;) {
      // Gather one UTF-8 code point: a lead byte plus up to three continuation bytes.
      let j = i + 1;
      while (j < input.length && (input[j] & 0xc0) === 0x80 && j - i < 4) j++;
      const id = this.ids.get(latin1(input.subarray(i, j)));
      if (id !== undefined) tokens.push(id);
      else for (let k = i; k < j; k++) tokens.push(input[k] + BYTE_OFFSET);
      i = j;
    }
    return this.merge(tokens);
  }

  /**
   * run.c's merge loop (repeatedly merge the adjacent pair whose merged piece scores highest,
   * leftmost on ties) in O(n log n) rather than its O(n^2): the tokens are a linked list and the
   * candidate pairs a heap ordered by (score, position); entries made stale by a merge are skipped.
   */
  private merge(tokens: number[]): number[] {
    const n = tokens.length;
    const next = Int32Array.from({ length: n }, (_, i) => (i + 1 < n ? i + 1 : -1));
    const prev = Int32Array.from({ length: n }, (_, i) => i - 1);
    const version = new Int32Array(n);
    const alive = new Uint8Array(n).fill(1);
    const heap = new PairHeap();
    const offer = (left: number) => {
      const right = left < 0 ? -1 : next[left];
      if (right < 0) return;
      const id = this.ids.get(this.keys[tokens[left]] + this.keys[tokens[right]]);
      // run.c starts from a best score of -1e10: pairs scoring no higher never merge.
      if (id !== undefined && this.scores[id] > -1e10) {
        heap.push({
          score: this.scores[id],
          left,
          right,
          id,
          leftVersion: version[left],
          rightVersion: version[right],
        });
      }
    };
    for (let i = 0; i + 1 < n; i++) offer(i);
    for (let pair = heap.pop(); pair; pair = heap.pop()) {
      const { left, right } = pair;
      const stale =
        !alive[left] ||
        !alive[right] ||
        next[left] !== right ||
        version[left] !== pair.leftVersion ||
        version[right] !== pair.rightVersion;
      if (stale) continue;
      tokens[left] = pair.id;
      version[left]++;
      alive[right] = 0;
      next[left] = next[right];
      if (next[right] >= 0) prev[next[right]] = left;
      offer(prev[left]);
      offer(left);
    }
    const out: number[] = [];
    for (let i = 0; i >= 0 && i < n; i = next[i]) out.push(tokens[i]);
    return out;
  }

  /** The bytes llama2.c prints for `id` after `prev`. */
  pieceBytes(prev: number, id: number): Uint8Array {
    let piece = this.pieces[id];
    if (!piece) throw new TokenizerError(`token id ${id} is outside the tokenizer's ${this.pieces.length} pieces`);
    if (prev === BOS && piece[0] === 0x20) piece = piece.subarray(1);
    const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(latin1(piece));
    return m ? Uint8Array.of(parseInt(m[1], 16)) : piece;
  }

  decode(ids: readonly number[]): string {
    const decoder = this.streamDecoder([BOS]);
    return ids.map((id) => decoder.push(id)).join('') + decoder.flush();
  }

  streamDecoder(context: readonly number[]): StreamDecoder {
    let prev = context.length ? context[context.length - 1] : BOS;
    const utf8 = new TextDecoder('utf-8');
    return {
      push: (id) => {
        const text = utf8.decode(this.pieceBytes(prev, id), { stream: true });
        prev = id;
        return text;
      },
      flush: () => utf8.decode(),
    };
  }

  tokenText(id: number): string {
    return new TextDecoder().decode(this.pieceBytes(-1, id));
  }

  tokenBytes(id: number): Uint8Array | undefined {
    return id >= 0 && id < this.pieces.length ? this.pieceBytes(-1, id) : undefined;
  }

  private lookup(s: string): number {
    const id = this.ids.get(s);
    if (id === undefined) throw new TokenizerError(`the tokenizer has no piece for ${JSON.stringify(s)}`);
    return id;
  }
}

function latin1(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
  return s;
}

interface Pair {
  score: number;
  /** Index of the pair's left token: list order, so the smaller one is the leftmost. */
  left: number;
  right: number;
  id: number;
  leftVersion: number;
  rightVersion: number;
}

/** A binary max-heap of merge candidates: highest score first, leftmost first among equals. */
class PairHeap {
  private readonly items: Pair[] = [];

  private before(a: Pair, b: Pair): boolean {
    return a.score > b.score || (a.score === b.score && a.left < b.left);
  }

  push(p: Pair): void {
    const items = this.items;
    items.push(p);
    for (let i = items.length - 1; i > 0;) {
      const parent = (i - 1) >> 1;
      if (!this.before(items[i], items[parent])) break;
      [items[i], items[parent]] = [items[parent], items[i]];
      i = parent;
    }
  }

  pop(): Pair | undefined {
    const items = this.items;
    const top = items[0];
    const last = items.pop();
    if (items.length && last) {
      items[0] = last;
      for (let i = 0; ;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let best = i;
        if (l < items.length && this.before(items[l], items[best])) best = l;
        if (r < items.length && this.before(items[r], items[best])) best = r;
        if (best === i) break;
        [items[i], items[best]] = [items[best], items[i]];
        i = best;
      }
    }
    return top;
  }
}
