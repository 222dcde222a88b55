import { SchemaError } from './schema.ts';

/**
 * JSON Schema's `pattern` for the simple regular expressions schemas use (codes, ids, dates):
 * literals, `.`, classes (`[a-z0-9_]`, `[^...]`, `\d`, `\w`, `\s`), groups with `|`, and the
 * quantifiers `? * + {n} {n,} {n,m}`, compiled to a DFA over printable ASCII without `"` and `\`
 * (so a matching value is its own JSON text). Anything else is refused by name. A pattern is
 * unanchored in JSON Schema; the grammar writes whole matches, which satisfy it either way, so a
 * leading `^` and a trailing `$` are optional.
 */
export interface Dfa {
  /** next[state * 128 + byte]: the next state, -1 for none. */
  readonly next: Int16Array;
  readonly accepting: Uint8Array;
}

const MAX_NFA_STATES = 4096;
const MAX_DFA_STATES = 512;
const MAX_REPEAT = 64;

/** The bytes a pattern's characters may be: printable ASCII but the quote and the backslash. */
const ALPHABET = Array.from({ length: 95 }, (_, i) => i + 0x20).filter((b) => b !== 0x22 && b !== 0x5c);
type CharSet = Uint8Array; // [128]: 1 = in the set

type Ast =
  | { k: 'set'; set: CharSet }
  | { k: 'seq'; items: Ast[] }
  | { k: 'alt'; options: Ast[] }
  | { k: 'repeat'; item: Ast; min: number; max: number };

export function compilePattern(source: string, at: string): Dfa {
  const ast = new Parser(source, at).parse();
  return toDfa(ast, `pattern at ${at}`);
}

class Parser {
  private i = 0;
  constructor(
    private readonly s: string,
    private readonly at: string,
  ) {}

  private fail(why: string): never {
    throw new SchemaError(`pattern ${JSON.stringify(this.s)} at ${this.at}: ${why}`);
  }

  parse(): Ast {
    if (this.s.startsWith('^')) this.i++;
    const end = this.s.endsWith('$') && !this.s.endsWith('\\$') ? this.s.length - 1 : this.s.length;
    const ast = this.alternation(end);
    if (this.i !== end) this.fail(`unexpected ${JSON.stringify(this.s[this.i])} at ${this.i}`);
    return ast;
  }

  private alternation(end: number): Ast {
    const options = [this.sequence(end)];
    while (this.i < end && this.s[this.i] === '|') {
      this.i++;
      options.push(this.sequence(end));
    }
    return options.length === 1 ? options[0] : { k: 'alt', options };
  }

  private sequence(end: number): Ast {
    const items: Ast[] = [];
    while (this.i < end && this.s[this.i] !== '|' && this.s[this.i] !== ')') items.push(this.quantified(end));
    return { k: 'seq', items };
  }

  private quantified(end: number): Ast {
    let item = this.atom(end);
    while (this.i < end) {
      const c = this.s[this.i];
      let min: number, max: number;
      if (c === '?' || c === '*' || c === '+') {
        this.i++;
        [min, max] = c === '?' ? [0, 1] : c === '*' ? [0, Infinity] : [1, Infinity];
      } else if (c === '{') {
        const m = /^\{(\d+)(,(\d*))?\}/.exec(this.s.slice(this.i));
        if (!m) this.fail(`a "{" that is no {n}, {n,} or {n,m} at ${this.i}`);
        this.i += m[0].length;
        min = Number(m[1]);
        max = m[2] === undefined ? min : m[3] === '' ? Infinity : Number(m[3]);
        if (min > max || (max > MAX_REPEAT && max !== Infinity) || min > MAX_REPEAT)
          this.fail(`repeat ${m[0]}: bounds up to ${MAX_REPEAT}, min <= max`);
      } else return item;
      if (this.s[this.i] === '?' || this.s[this.i] === '+')
        this.fail('lazy and possessive quantifiers are not supported');
      item = { k: 'repeat', item, min, max };
    }
    return item;
  }

  private atom(end: number): Ast {
    const c = this.s[this.i++];
    if (c === '(') {
      if (this.s.startsWith('?:', this.i)) this.i += 2;
      else if (this.s[this.i] === '?') this.fail('lookaround and named groups are not supported');
      const inner = this.alternation(end);
      if (this.s[this.i++] !== ')') this.fail('a group is not closed');
      return inner;
    }
    if (c === '[') return { k: 'set', set: this.charClass() };
    if (c === '.') return { k: 'set', set: setOf(ALPHABET) };
    if (c === '\\') return { k: 'set', set: this.escape(false) };
    if ('*+?{'.includes(c)) this.fail(`nothing to repeat at ${this.i - 1}`);
    if (c === '^' || c === '$') this.fail('anchors are supported only at the very start and end');
    return { k: 'set', set: this.literal(c) };
  }

  private literal(c: string): CharSet {
    const b = c.charCodeAt(0);
    if (!ALPHABET.includes(b)) this.fail(`the character ${JSON.stringify(c)} (printable ASCII only, no " or \\)`);
    return setOf([b]);
  }

  /** After a backslash: a class escape, or an escaped character. */
  private escape(inClass: boolean): CharSet {
    const c = this.s[this.i++];
    if (c === undefined) this.fail('a pattern cannot end with a backslash');
    const classes: Record<string, number[]> = {
      d: range(0x30, 0x39),
      w: [...range(0x30, 0x39), ...range(0x41, 0x5a), ...range(0x61, 0x7a), 0x5f],
      s: [0x20], // other whitespace would need escapes in JSON
    };
    const lower = c.toLowerCase();
    if (lower in classes) {
      const set = setOf(classes[lower]);
      return c === lower ? set : complement(set);
    }
    if (/[a-zA-Z0-9]/.test(c)) this.fail(`the escape \\${c} is not supported${inClass ? ' in a class' : ''}`);
    return this.literal(c);
  }

  private charClass(): CharSet {
    const negated = this.s[this.i] === '^';
    if (negated) this.i++;
    const set = new Uint8Array(128);
    let first = true;
    while (this.s[this.i] !== ']' || first) {
      first = false;
      if (this.i >= this.s.length) this.fail('a class is not closed');
      const lo = this.classChar();
      if (this.s[this.i] === '-' && this.s[this.i + 1] !== ']' && this.i + 1 < this.s.length) {
        this.i++;
        const hi = this.classChar();
        if (lo.length !== 1 || hi.length !== 1 || lo[0] > hi[0]) this.fail('a bad range in a class');
        for (const b of range(lo[0], hi[0])) if (ALPHABET.includes(b)) set[b] = 1;
      } else for (const b of lo) set[b] = 1;
    }
    this.i++;
    return negated ? complement(set) : set;
  }

  /** One class member: its bytes (a class escape gives several). */
  private classChar(): number[] {
    const c = this.s[this.i++];
    if (c === '\\') return members(this.escape(true));
    if (c === '[') this.fail('nested classes are not supported');
    return members(this.literal(c));
  }
}

const range = (lo: number, hi: number) => Array.from({ length: hi - lo + 1 }, (_, i) => lo + i);
function setOf(bytes: number[]): CharSet {
  const set = new Uint8Array(128);
  for (const b of bytes) set[b] = 1;
  return set;
}
const complement = (set: CharSet) => setOf(ALPHABET.filter((b) => !set[b]));
const members = (set: CharSet) => ALPHABET.filter((b) => set[b]);

/** Thompson's construction, then subset construction, both bounded. */
function toDfa(ast: Ast, what: string): Dfa {
  const eps: number[][] = [];
  const edges: Array<Array<[CharSet, number]>> = [];
  const state = () => {
    if (eps.length >= MAX_NFA_STATES) throw new SchemaError(`${what} is too large (over ${MAX_NFA_STATES} states)`);
    eps.push([]);
    edges.push([]);
    return eps.length - 1;
  };
  /** A fragment from `from` to a new end state. */
  const build = (a: Ast, from: number): number => {
    switch (a.k) {
      case 'set': {
        const to = state();
        edges[from].push([a.set, to]);
        return to;
      }
      case 'seq':
        return a.items.reduce((at, item) => build(item, at), from);
      case 'alt': {
        const to = state();
        for (const o of a.options) eps[build(o, from)].push(to);
        return to;
      }
      case 'repeat': {
        let at = from;
        for (let k = 0; k < a.min; k++) at = build(a.item, at);
        if (a.max === Infinity) {
          const loop = state();
          eps[at].push(loop);
          eps[build(a.item, loop)].push(loop);
          return loop;
        }
        const to = state();
        eps[at].push(to);
        for (let k = a.min; k < a.max; k++) {
          at = build(a.item, at);
          eps[at].push(to);
        }
        return to;
      }
    }
  };
  const start = state();
  const end = build(ast, start);
  const closure = (set: number[]) => {
    const seen = new Set(set);
    const todo = [...set];
    while (todo.length) {
      for (const t of eps[todo.pop()!]) {
        if (seen.has(t)) continue;
        seen.add(t);
        todo.push(t);
      }
    }
    return [...seen].sort((x, y) => x - y);
  };
  const sets = [closure([start])];
  const index = new Map([[sets[0].join(','), 0]]);
  const next: number[] = [];
  for (let d = 0; d < sets.length; d++) {
    const row = new Array<number>(128).fill(-1);
    for (const b of ALPHABET) {
      const targets = sets[d].flatMap((s) => edges[s].filter(([set]) => set[b]).map(([, t]) => t));
      if (!targets.length) continue;
      const set = closure(targets);
      const key = set.join(',');
      let to = index.get(key);
      if (to === undefined) {
        if (sets.length >= MAX_DFA_STATES)
          throw new SchemaError(`${what} is too large (over ${MAX_DFA_STATES} states)`);
        index.set(key, (to = sets.length));
        sets.push(set);
      }
      row[b] = to;
    }
    next.push(...row);
  }
  return { next: Int16Array.from(next), accepting: Uint8Array.from(sets, (s) => +s.includes(end)) };
}
