import { accepting, closed, initialStack, plainString, stateKey, step, type Stack } from './grammar.ts';
import type { GrammarNode } from './schema.ts';
import type { Trie, Vocabulary } from './vocabulary.ts';

/**
 * One row's structured output: the grammar's live states and, per step, the mask of tokens whose
 * bytes keep the output on the grammar. End of output (the row's stop tokens) is allowed only when
 * the value is complete; once nothing can follow it, the row ends (`closed`).
 */
export class JsonConstraint {
  private states: Stack[];
  /** Token masks by state key, shared by the rows of one grammar on one vocabulary. */
  private readonly masks: Map<string, Uint8Array>;

  constructor(
    grammar: GrammarNode,
    private readonly vocabulary: Vocabulary,
    private readonly tokenBytes: (id: number) => Uint8Array | undefined,
  ) {
    this.states = [initialStack(grammar)];
    this.masks = vocabulary.masksOf(grammar);
  }

  /** The value is complete and nothing can follow it. */
  get closed(): boolean {
    return this.states.every(closed);
  }

  /** allowed[id] = 1 for each token that may come next; stop ids only when the value is complete. */
  allowed(stopIds: Iterable<number>): Uint8Array {
    // States met before (the same structural position) reuse their mask; inside strings the
    // length counts vary, but the mask is cheap there (plain text tokens are one class).
    const cached = !this.states.some(plainString);
    const key = cached ? this.states.map(stateKey).join('/') : '';
    let mask = cached ? this.masks.get(key) : undefined;
    if (mask) {
      this.masks.delete(key); // least recently used first
      this.masks.set(key, mask);
    } else {
      mask = this.compute();
      if (cached) {
        this.masks.set(key, mask);
        if (this.masks.size > MAX_CACHED_MASKS) this.masks.delete(this.masks.keys().next().value!);
      }
    }
    mask = mask.slice();
    // A stop id ends the row whatever its bytes: only once the value is complete.
    const end = this.states.some(accepting) ? 1 : 0;
    for (const id of stopIds) if (id < mask.length) mask[id] = end;
    return mask;
  }

  private compute(): Uint8Array {
    const v = this.vocabulary;
    const mask = new Uint8Array(v.size);
    for (const s of this.states) {
      const string = plainString(s);
      if (!string) {
        walk(v.trie, s, mask);
        continue;
      }
      // Inside a string: plain text tokens fit whole (within maxLength); walk only the others.
      if (string.max === Infinity && string.min === 0) {
        if (this.states.length === 1) mask.set(v.plainMask);
        else for (let i = 0; i < mask.length; i++) mask[i] |= v.plainMask[i];
      } else {
        const room = string.max - string.len;
        for (let k = 0; k < v.plainBmp.length && v.plainBmpChars[k] <= room; k++) mask[v.plainBmp[k]] = 1;
      }
      walk(v.special, s, mask);
    }
    return mask;
  }

  /** Moves past a chosen token; false if its bytes leave the grammar (the caller masked it wrongly). */
  accept(id: number): boolean {
    const bytes = this.tokenBytes(id);
    if (!bytes?.length) return false;
    let states = this.states;
    for (const b of bytes) {
      const next: Stack[] = [];
      for (const s of states) step(s, b, next);
      states = next;
    }
    if (!states.length) return false;
    this.states = states;
    return true;
  }
}

/** Masks kept per grammar and vocabulary (each one byte a token: 50 KB for GPT-2's vocabulary). */
const MAX_CACHED_MASKS = 64;

/** Marks the ids of `trie` whose bytes the grammar takes from state `from` (depth first, pruning dead paths). */
function walk(trie: Trie, from: Stack, mask: Uint8Array): void {
  const nodes: number[] = [];
  const states: Stack[][] = [];
  for (let c = trie.firstChild[0]; c >= 0; c = trie.nextSibling[c]) {
    nodes.push(c);
    states.push([from]);
  }
  while (nodes.length) {
    const node = nodes.pop()!;
    const before = states.pop()!;
    const after: Stack[] = [];
    const b = trie.byte[node];
    for (const s of before) step(s, b, after);
    if (!after.length) continue;
    for (let k = trie.idFrom[node]; k < trie.idTo[node]; k++) mask[trie.ids[k]] = 1;
    for (let c = trie.firstChild[node]; c >= 0; c = trie.nextSibling[c]) {
      nodes.push(c);
      states.push(after);
    }
  }
}
