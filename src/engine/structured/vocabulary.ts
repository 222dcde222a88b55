import type { Tokenizer } from '../tokenizer/types.ts';
import { utf8Lead } from './grammar.ts';
import type { GrammarNode } from './schema.ts';

/**
 * A tokenizer's vocabulary as the token mask needs it, built once per tokenizer instance: each
 * id's bytes in a byte trie (flat arrays, walked depth first with grammar states), and the class
 * of "plain string" tokens (printable bytes and whole UTF-8 characters, no quote, backslash or
 * control byte), which fit inside any open string: inside a string, a step takes them whole by
 * their length in characters and walks only the trie of the other tokens.
 */
export class Vocabulary {
  /** Ids the tokenizer knows; an id at or past it (an adapter's task token, padding) is never allowed. */
  readonly size: number;
  /** Every id with bytes. */
  readonly trie: Trie;
  /** Ids with bytes that are not plain string text. */
  readonly special: Trie;
  /** Plain string tokens: all of them, as a mask; and those without 4-byte characters, by length. */
  readonly plainMask: Uint8Array;
  /** Plain BMP-only tokens by their length in characters: ids, and where each length starts. */
  readonly plainBmp: Int32Array;
  readonly plainBmpChars: Int32Array;

  private constructor(tokenizer: Tokenizer) {
    this.size = tokenizer.size;
    const bytes = Array.from({ length: this.size }, (_, id) => tokenizer.tokenBytes(id));
    this.plainMask = new Uint8Array(this.size);
    const bmp: Array<[number, number]> = [];
    const special: number[] = [];
    const all: number[] = [];
    bytes.forEach((b, id) => {
      if (!b?.length) return;
      all.push(id);
      const chars = plainChars(b);
      if (chars === undefined) return void special.push(id);
      this.plainMask[id] = 1;
      if (chars >= 0) bmp.push([chars, id]);
    });
    bmp.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    this.plainBmp = Int32Array.from(bmp, ([, id]) => id);
    this.plainBmpChars = Int32Array.from(bmp, ([chars]) => chars);
    this.trie = Trie.of(all, bytes);
    this.special = Trie.of(special, bytes);
  }

  private static readonly cache = new WeakMap<Tokenizer, Vocabulary>();
  private readonly masks = new WeakMap<GrammarNode, Map<string, Uint8Array>>();

  /** The token-mask cache of one grammar (compiled grammars are shared by equal response_formats). */
  masksOf(grammar: GrammarNode): Map<string, Uint8Array> {
    let m = this.masks.get(grammar);
    if (!m) this.masks.set(grammar, (m = new Map()));
    return m;
  }

  static of(tokenizer: Tokenizer): Vocabulary {
    let v = Vocabulary.cache.get(tokenizer);
    if (!v) Vocabulary.cache.set(tokenizer, (v = new Vocabulary(tokenizer)));
    return v;
  }
}

/**
 * A token's length in characters if all its bytes are plain string text: -1 when it holds a
 * character beyond the BMP (two UTF-16 units: left out of length-bounded strings); undefined
 * when it is not plain (quote, backslash, control byte, or a partial UTF-8 character).
 */
function plainChars(b: Uint8Array): number | undefined {
  let chars = 0;
  let astral = false;
  for (let i = 0; i < b.length;) {
    const c = b[i];
    if (c === 0x22 || c === 0x5c || c < 0x20) return undefined;
    if (c < 0x80) {
      chars++;
      i++;
      continue;
    }
    const lead = utf8Lead(c);
    if (!lead || i + lead.pending >= b.length) return undefined;
    if (b[i + 1] < lead.lo || b[i + 1] > lead.hi) return undefined;
    for (let k = 2; k <= lead.pending; k++) if ((b[i + k] & 0xc0) !== 0x80) return undefined;
    astral ||= lead.pending === 3;
    chars++;
    i += lead.pending + 1;
  }
  return astral ? -1 : chars;
}

/**
 * A byte trie in flat arrays: node 0 is the root; children are a linked list (first child, next
 * sibling); the ids ending at node n are ids[idFrom[n] .. idTo[n]).
 */
export class Trie {
  private constructor(
    readonly byte: Uint8Array,
    readonly firstChild: Int32Array,
    readonly nextSibling: Int32Array,
    readonly idFrom: Int32Array,
    readonly idTo: Int32Array,
    readonly ids: Int32Array,
  ) {}

  /** Built from the ids sorted by their bytes: each id's path shares its prefix with the previous one's. */
  static of(members: readonly number[], bytes: ReadonlyArray<Uint8Array | undefined>): Trie {
    const ids = Int32Array.from(members).sort((a, b) => compareBytes(bytes[a]!, bytes[b]!) || a - b);
    const byte = [0];
    const firstChild = [-1];
    const nextSibling = [-1];
    const lastChild = [-1];
    const idFrom = [0];
    const idTo = [0];
    const path = [0]; // path[d]: the node at depth d of the previous id
    let prev: Uint8Array<ArrayBufferLike> = new Uint8Array(0);
    ids.forEach((id, k) => {
      const b = bytes[id]!;
      let common = 0;
      while (common < b.length && common < prev.length && b[common] === prev[common]) common++;
      path.length = common + 1;
      for (let d = common; d < b.length; d++) {
        const node = byte.length;
        const parent = path[d];
        byte.push(b[d]);
        firstChild.push(-1);
        nextSibling.push(-1);
        lastChild.push(-1);
        idFrom.push(0);
        idTo.push(0);
        if (lastChild[parent] < 0) firstChild[parent] = node;
        else nextSibling[lastChild[parent]] = node;
        lastChild[parent] = node;
        path.push(node);
      }
      // Equal byte strings are neighbours in the order: a node's ids are one run of it.
      const end = path[b.length];
      if (idTo[end] === 0) idFrom[end] = k;
      idTo[end] = k + 1;
      prev = b;
    });
    const i32 = (a: number[]) => Int32Array.from(a);
    return new Trie(Uint8Array.from(byte), i32(firstChild), i32(nextSibling), i32(idFrom), i32(idTo), ids);
  }
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}
