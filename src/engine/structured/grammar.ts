import { MAX_INTEGER_DIGITS, type GrammarNode, type Property } from './schema.ts';
import type { Dfa } from './pattern.ts';

/**
 * A pushdown recognizer of JSON bytes for a compiled schema (schema.ts), hand-written: a state is
 * an immutable stack of frames, so a token's bytes can be tried from one state along many paths
 * of the vocabulary trie without copying. anyOf makes several stacks live at once (a
 * JsonConstraint holds them all); most die at their first byte.
 *
 * The JSON it accepts is compact and deterministic: no whitespace except one optional space after
 * `:` and `,` and before the value (sentencepiece vocabularies put a space before most words),
 * properties in schema order, numbers of at most 15 integer and 15 fraction digits, strings of
 * well-formed UTF-8. Bounded strings (minLength/maxLength) take no \u escapes and no characters
 * beyond the BMP, so that their length counts the same in UTF-16 and in code points; a string with
 * a pattern follows its automaton (pattern.ts), byte for byte.
 */
export interface Stack {
  readonly frame: Frame;
  readonly parent: Stack | null;
}

type ObjectNode = Extract<GrammarNode, { kind: 'object' }>;
type ArrayNode = Extract<GrammarNode, { kind: 'array' }>;
type NumberNode = Extract<GrammarNode, { kind: 'number' }>;

type Frame =
  /** start: before the value (one space allowed); value: the value is open above; done. */
  | { t: 'root'; node: GrammarNode; phase: 'start' | 'valueStart' | 'value' | 'done' }
  | {
      t: 'object';
      node: ObjectNode;
      phase:
        | 'open'
        | 'afterComma'
        | 'keyStart'
        | 'key'
        | 'keyString'
        | 'colon'
        | 'afterColon'
        | 'valueStart'
        | 'value'
        | 'afterValue';
      /** Properties mode: the first property index still to come; the key's candidates and bytes matched. */
      next: number;
      candidates: readonly number[];
      pos: number;
      /** The property whose value comes (properties mode). */
      current: number;
    }
  | { t: 'array'; node: ArrayNode; phase: 'open' | 'afterComma' | 'itemStart' | 'item' | 'afterItem'; count: number }
  | {
      t: 'string';
      min: number;
      max: number;
      /** Characters so far. */
      len: number;
      /** 0: none; 1: after a backslash; 2..5: \u hex digits read + 2. */
      esc: number;
      /** UTF-8 continuation bytes still due, and the range the next one must be in. */
      pending: number;
      lo: number;
      hi: number;
      /** A pattern's automaton and its state (such strings are printable ASCII, no escapes). */
      dfa?: Dfa;
      at: number;
    }
  | { t: 'number'; node: NumberNode; state: NumberState; digits: number }
  | { t: 'literal'; values: readonly Uint8Array[]; pos: number };

/** JSON number states: sign, a leading 0, integer digits, '.', fraction digits, 'e', exponent sign, digits. */
const enum NumberState {
  Sign,
  Zero,
  Int,
  Dot,
  Frac,
  E,
  ESign,
  Exp,
}
const ACCEPTING_NUMBER = new Set([NumberState.Zero, NumberState.Int, NumberState.Frac, NumberState.Exp]);
const MAX_EXPONENT_DIGITS = 2;
/** anyOf alternatives live at once, at most (past it, later ones are dropped: output stays valid). */
const MAX_STACKS = 64;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const SPACE = 0x20;
const isDigit = (b: number) => b >= 0x30 && b <= 0x39;
const isHex = (b: number) => isDigit(b) || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66);
const ESCAPES = new Set(Array.from('"\\/bfnrt', (c) => c.charCodeAt(0)));

export function initialStack(node: GrammarNode): Stack {
  return { frame: { t: 'root', node, phase: 'start' }, parent: null };
}

/** Whether the value is complete here (end of output allowed). */
export function accepting(s: Stack): boolean {
  const f = s.frame;
  if (f.t === 'root') return f.phase === 'done';
  if (s.parent?.frame.t !== 'root') return false;
  if (f.t === 'number') return ACCEPTING_NUMBER.has(f.state);
  return f.t === 'literal' && f.values.some((v) => v.length === f.pos);
}

/** Whether nothing can follow (the value is complete and cannot go on). */
export const closed = (s: Stack) => s.frame.t === 'root' && s.frame.phase === 'done';

/** A plain string position: no escape or UTF-8 sequence open. Its string bounds, else undefined. */
export function plainString(s: Stack): { len: number; min: number; max: number } | undefined {
  const f = s.frame;
  return f.t === 'string' && f.esc === 0 && f.pending === 0 && !f.dfa ? f : undefined;
}

/**
 * A key that is equal for states that allow the same continuations (the same nodes, phases and
 * the counts that matter), for caching their token masks.
 */
export function stateKey(s: Stack): string {
  let key = '';
  for (let at: Stack | null = s; at; at = at.parent) {
    const f = at.frame;
    switch (f.t) {
      case 'root':
        key += `R${f.phase}`;
        break;
      case 'object':
        key += `O${idOf(f.node)}.${f.phase}.${f.next}.${f.current}.${f.pos}.${f.candidates.join(',')}|`;
        break;
      case 'array':
        // Counts past both bounds allow the same: they share a key.
        key += `A${idOf(f.node)}.${f.phase}.${Math.min(f.count, arrayCountBound(f.node))}|`;
        break;
      case 'string':
        key += `S${f.min}.${f.max}.${f.len}.${f.esc}.${f.pending}.${f.lo}.${f.hi}.${f.dfa ? idOf(f.dfa) : 0}.${f.at}|`;
        break;
      case 'number':
        key += `N${idOf(f.node)}.${f.state}.${f.digits}|`;
        break;
      case 'literal':
        key += `L${f.pos}.${f.values.map(idOf).join(',')}|`;
        break;
    }
  }
  return key;
}

const arrayCountBound = (a: ArrayNode) => (a.maxItems === Infinity ? a.minItems : a.maxItems);

const ids = new WeakMap<object, number>();
let lastId = 0;
function idOf(o: object): number {
  let id = ids.get(o);
  if (id === undefined) ids.set(o, (id = ++lastId));
  return id;
}

/** The stacks after one byte (none: the byte is not allowed). */
export function step(s: Stack, b: number, out: Stack[] = []): Stack[] {
  const f = s.frame;
  switch (f.t) {
    case 'root':
      if (f.phase === 'start' && b === SPACE) return push(out, { frame: { ...f, phase: 'valueStart' }, parent: null });
      if (f.phase === 'start' || f.phase === 'valueStart')
        return enter({ frame: { ...f, phase: 'value' }, parent: null }, f.node, b, out);
      return out;
    case 'object':
      return stepObject(s, f, b, out);
    case 'array':
      return stepArray(s, f, b, out);
    case 'string':
      return stepString(s, f, b, out);
    case 'number':
      return stepNumber(s, f, b, out);
    case 'literal':
      return stepLiteral(s, f, b, out);
  }
}

function push(out: Stack[], s: Stack): Stack[] {
  if (out.length < MAX_STACKS) out.push(s);
  return out;
}

const on = (parent: Stack, frame: Frame): Stack => ({ frame, parent });
const replace = (s: Stack, frame: Frame): Stack => ({ frame, parent: s.parent });

/** A value of `node` starts with byte b, above `parent` (which is already in its `value` phase). */
function enter(parent: Stack, node: GrammarNode, b: number, out: Stack[]): Stack[] {
  switch (node.kind) {
    case 'union':
      for (const option of node.options) enter(parent, option, b, out);
      return out;
    case 'any':
      if (b === 0x7b) return enter(parent, ANY_OBJECT, b, out);
      if (b === 0x5b) return enter(parent, ANY_ARRAY, b, out);
      if (b === QUOTE) return enter(parent, ANY_STRING, b, out);
      if (b === 0x2d || isDigit(b)) return enter(parent, ANY_NUMBER, b, out);
      return enter(parent, ANY_LITERAL, b, out);
    case 'object':
      if (b !== 0x7b) return out;
      return push(out, on(parent, { t: 'object', node, phase: 'open', next: 0, candidates: [], pos: 0, current: -1 }));
    case 'array':
      return b === 0x5b ? push(out, on(parent, { t: 'array', node, phase: 'open', count: 0 })) : out;
    case 'string':
      if (b !== QUOTE) return out;
      return push(out, on(parent, { ...OPEN_STRING, min: node.minLength, max: node.maxLength, dfa: node.pattern }));
    case 'number': {
      const frame = { t: 'number', node, state: NumberState.Sign, digits: 0 } as const;
      if (b === 0x2d && node.nonNegative) return out;
      return stepNumber(on(parent, frame), frame, b, out);
    }
    case 'literal': {
      const frame = { t: 'literal', values: node.values, pos: 0 } as const;
      return stepLiteral(on(parent, frame), frame, b, out);
    }
  }
}

/** A string just opened (an object's free-form key: any string). */
const OPEN_STRING = { t: 'string', min: 0, max: Infinity, len: 0, esc: 0, pending: 0, lo: 0, hi: 0, at: 0 } as const;
const ANY: GrammarNode = { kind: 'any' };
const ANY_OBJECT: GrammarNode = { kind: 'object', props: [], values: ANY };
const ANY_ARRAY: GrammarNode = { kind: 'array', items: ANY, minItems: 0, maxItems: Infinity };
const ANY_STRING: GrammarNode = { kind: 'string', minLength: 0, maxLength: Infinity };
const ANY_NUMBER: GrammarNode = { kind: 'number', integer: false, nonNegative: false, exponent: true };
const ANY_LITERAL: GrammarNode = {
  kind: 'literal',
  values: ['true', 'false', 'null'].map((v) => new TextEncoder().encode(v)),
};

/**
 * The value on top of `s` is complete: pop it, and move its parent past the value. Returns the
 * parent's new stack.
 */
function finish(s: Stack): Stack {
  const parent = s.parent!;
  const f = parent.frame;
  switch (f.t) {
    case 'root':
      return replace(parent, { ...f, phase: 'done' });
    case 'object':
      return replace(parent, { ...f, phase: f.phase === 'keyString' ? 'colon' : 'afterValue' });
    case 'array':
      return replace(parent, { ...f, phase: 'afterItem', count: f.count + 1 });
    default:
      throw new Error(`a ${f.t} cannot hold a value`);
  }
}

/** Properties that may come next from index `next`: up to and including the first required one. */
function nextKeys(props: readonly Property[], next: number): number[] {
  const out: number[] = [];
  for (let j = next; j < props.length; j++) {
    out.push(j);
    if (props[j].required) break;
  }
  return out;
}

function canClose(f: Extract<Frame, { t: 'object' }>): boolean {
  const props = f.node.props;
  for (let j = f.next; j < props.length; j++) if (props[j].required) return false;
  return true;
}

function stepObject(s: Stack, f: Extract<Frame, { t: 'object' }>, b: number, out: Stack[]): Stack[] {
  const { props, values } = f.node;
  const free = props.length === 0;
  switch (f.phase) {
    case 'open':
    case 'afterValue':
      if (b === 0x7d) return canClose(f) ? push(out, finish(replace(s, f))) : out;
      if (f.phase === 'afterValue') {
        if (b !== 0x2c) return out;
        const more = free || nextKeys(props, f.next).length > 0;
        return more ? push(out, replace(s, { ...f, phase: 'afterComma' })) : out;
      }
      if (free && !values) return out; // additionalProperties: false and no properties: only {}
      return stepObject(s, { ...f, phase: 'keyStart' }, b, out);
    case 'afterComma':
      if (b === SPACE) return push(out, replace(s, { ...f, phase: 'keyStart' }));
      return stepObject(s, { ...f, phase: 'keyStart' }, b, out);
    case 'keyStart':
      if (b !== QUOTE) return out;
      if (free) {
        return push(out, on(replace(s, { ...f, phase: 'keyString' }), OPEN_STRING));
      }
      return push(out, replace(s, { ...f, phase: 'key', candidates: nextKeys(props, f.next), pos: 1 }));
    case 'key': {
      const candidates = f.candidates.filter((j) => props[j].key[f.pos] === b);
      if (!candidates.length) return out;
      const pos = f.pos + 1;
      const whole = candidates.find((j) => props[j].key.length === pos);
      // A key ends with its closing quote, which no other key has there: a whole key is the only one.
      if (whole !== undefined) {
        const colon = { ...f, phase: 'colon', current: whole, next: whole + 1, candidates: [], pos: 0 } as const;
        return push(out, replace(s, colon));
      }
      return push(out, replace(s, { ...f, candidates, pos }));
    }
    case 'colon':
      return b === 0x3a ? push(out, replace(s, { ...f, phase: 'afterColon' })) : out;
    case 'afterColon':
    case 'valueStart': {
      if (f.phase === 'afterColon' && b === SPACE) return push(out, replace(s, { ...f, phase: 'valueStart' }));
      const node = free ? values! : props[f.current].value;
      return enter(replace(s, { ...f, phase: 'value' }), node, b, out);
    }
    default:
      return out; // keyString, value: the child on top takes the bytes
  }
}

function stepArray(s: Stack, f: Extract<Frame, { t: 'array' }>, b: number, out: Stack[]): Stack[] {
  const { items, minItems, maxItems } = f.node;
  switch (f.phase) {
    case 'open':
    case 'afterItem':
      if (b === 0x5d) return f.count >= minItems ? push(out, finish(replace(s, f))) : out;
      if (f.phase === 'afterItem') {
        return b === 0x2c && f.count < maxItems ? push(out, replace(s, { ...f, phase: 'afterComma' })) : out;
      }
      if (maxItems === 0) return out;
      return enter(replace(s, { ...f, phase: 'item' }), items, b, out);
    case 'afterComma':
    case 'itemStart':
      if (f.phase === 'afterComma' && b === SPACE) return push(out, replace(s, { ...f, phase: 'itemStart' }));
      return enter(replace(s, { ...f, phase: 'item' }), items, b, out);
    default:
      return out;
  }
}

function stepString(s: Stack, f: Extract<Frame, { t: 'string' }>, b: number, out: Stack[]): Stack[] {
  if (f.dfa) {
    if (b === QUOTE) return f.dfa.accepting[f.at] && f.len >= f.min ? push(out, finish(replace(s, f))) : out;
    const at = b < 0x80 && f.len < f.max ? f.dfa.next[f.at * 128 + b] : -1;
    return at < 0 ? out : push(out, replace(s, { ...f, at, len: f.len + 1 }));
  }
  const bounded = f.min > 0 || f.max < Infinity;
  if (f.pending > 0) {
    if (b < f.lo || b > f.hi) return out;
    return push(out, replace(s, { ...f, pending: f.pending - 1, lo: 0x80, hi: 0xbf }));
  }
  if (f.esc === 1) {
    if (ESCAPES.has(b)) return push(out, replace(s, { ...f, esc: 0, len: f.len + 1 }));
    return b === 0x75 && !bounded ? push(out, replace(s, { ...f, esc: 2 })) : out;
  }
  if (f.esc > 1) {
    if (!isHex(b)) return out;
    return push(out, replace(s, f.esc === 5 ? { ...f, esc: 0, len: f.len + 1 } : { ...f, esc: f.esc + 1 }));
  }
  if (b === QUOTE) return f.len >= f.min ? push(out, finish(replace(s, f))) : out;
  if (f.len >= f.max) return out;
  if (b === BACKSLASH) return push(out, replace(s, { ...f, esc: 1 }));
  if (b >= 0x20 && b < 0x80) return push(out, replace(s, { ...f, len: f.len + 1 }));
  const lead = utf8Lead(b, bounded);
  return lead ? push(out, replace(s, { ...f, len: f.len + 1, ...lead })) : out;
}

/** A UTF-8 lead byte's continuation count and the range of its first continuation byte (RFC 3629). */
export function utf8Lead(b: number, bmpOnly = false): { pending: number; lo: number; hi: number } | undefined {
  if (b >= 0xc2 && b <= 0xdf) return { pending: 1, lo: 0x80, hi: 0xbf };
  if (b >= 0xe0 && b <= 0xef) return { pending: 2, lo: b === 0xe0 ? 0xa0 : 0x80, hi: b === 0xed ? 0x9f : 0xbf };
  if (bmpOnly || b < 0xf0 || b > 0xf4) return undefined;
  return { pending: 3, lo: b === 0xf0 ? 0x90 : 0x80, hi: b === 0xf4 ? 0x8f : 0xbf };
}

function stepNumber(s: Stack, f: Extract<Frame, { t: 'number' }>, b: number, out: Stack[]): Stack[] {
  const next = numberNext(f, b);
  if (next) return push(out, replace(s, next));
  // Not part of the number: if it is complete, the byte belongs to what follows it.
  if (!ACCEPTING_NUMBER.has(f.state)) return out;
  return step(finish(s), b, out);
}

function numberNext(f: Extract<Frame, { t: 'number' }>, b: number): typeof f | undefined {
  const { integer, exponent } = f.node;
  const to = (state: NumberState, digits = 0) => ({ ...f, state, digits });
  switch (f.state) {
    case NumberState.Sign:
      if (f.digits === 0 && b === 0x2d) return { ...f, digits: -1 }; // digits -1: the sign is in
      if (b === 0x30) return to(NumberState.Zero);
      return b > 0x30 && b <= 0x39 ? to(NumberState.Int, 1) : undefined;
    case NumberState.Zero:
    case NumberState.Int:
      if (isDigit(b))
        return f.state === NumberState.Int && f.digits < MAX_INTEGER_DIGITS
          ? to(NumberState.Int, f.digits + 1)
          : undefined;
      if (integer) return undefined;
      if (b === 0x2e) return to(NumberState.Dot);
      return exponent && (b === 0x65 || b === 0x45) ? to(NumberState.E) : undefined;
    case NumberState.Dot:
      return isDigit(b) ? to(NumberState.Frac, 1) : undefined;
    case NumberState.Frac:
      if (isDigit(b)) return f.digits < MAX_INTEGER_DIGITS ? to(NumberState.Frac, f.digits + 1) : undefined;
      return exponent && (b === 0x65 || b === 0x45) ? to(NumberState.E) : undefined;
    case NumberState.E:
      if (b === 0x2b || b === 0x2d) return to(NumberState.ESign);
      return isDigit(b) ? to(NumberState.Exp, 1) : undefined;
    case NumberState.ESign:
      return isDigit(b) ? to(NumberState.Exp, 1) : undefined;
    case NumberState.Exp:
      return isDigit(b) && f.digits < MAX_EXPONENT_DIGITS ? to(NumberState.Exp, f.digits + 1) : undefined;
  }
}

function stepLiteral(s: Stack, f: Extract<Frame, { t: 'literal' }>, b: number, out: Stack[]): Stack[] {
  const values = f.values.filter((v) => v.length > f.pos && v[f.pos] === b);
  if (values.length) {
    const pos = f.pos + 1;
    const next = replace(s, { ...f, values, pos });
    // Whole and nothing longer: the literal is over (strings, true, ... end themselves).
    return push(out, values.every((v) => v.length === pos) ? finish(next) : next);
  }
  // A number literal that is whole here: the byte belongs to what follows.
  return f.values.some((v) => v.length === f.pos) ? step(finish(s), b, out) : out;
}
