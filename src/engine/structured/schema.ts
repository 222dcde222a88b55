import { compilePattern, type Dfa } from './pattern.ts';

/**
 * OpenAI's `response_format` compiled to a grammar the byte-level recognizer (grammar.ts) runs.
 *
 * Hand-written for a JSON Schema subset: no maintained schema-to-grammar library runs offline in
 * Node (checked: @mlc-ai/web-xgrammar is a browser-oriented emscripten build at 0.x with no
 * documented Node use; llguidance has no npm package). Supported keywords are SUPPORTED below;
 * any other keyword is refused by name rather than silently ignored, so output always validates.
 * The work is bounded: schema bytes, nesting depth, nodes after $ref expansion, properties and
 * enum values per node. `pattern` compiles to an automaton of its own (pattern.ts).
 */

/** What a grammar node accepts. Literals are JSON texts (enum, const, true, false, null). */
export type GrammarNode =
  | { kind: 'any' }
  | { kind: 'object'; props: Property[]; values?: GrammarNode }
  | { kind: 'array'; items: GrammarNode; minItems: number; maxItems: number }
  | { kind: 'string'; minLength: number; maxLength: number; pattern?: Dfa }
  | { kind: 'number'; integer: boolean; nonNegative: boolean; exponent: boolean }
  | { kind: 'literal'; values: Uint8Array[] }
  | { kind: 'union'; options: GrammarNode[] };

/**
 * An object's property, emitted in schema order; an optional one may be left out. With no
 * properties, `values` (when set) is the schema of free-form keys' values, else the object is `{}`.
 */
export interface Property {
  /** The key as JSON text, quotes included. */
  key: Uint8Array;
  name: string;
  value: GrammarNode;
  required: boolean;
}

export class SchemaError extends Error {
  override name = 'SchemaError';
}

const LIMITS = {
  schemaBytes: 64 * 1024,
  depth: 24,
  nodes: 4096,
  properties: 256,
  enumValues: 256,
  anyOf: 32,
  /** minLength/maxLength/minItems/maxItems at most this (a bound, not a generation target). */
  count: 100_000,
};

const ANY: GrammarNode = { kind: 'any' };
const utf8 = new TextEncoder();

/** Keywords with no effect on what is valid: accepted and ignored. */
const ANNOTATIONS = new Set(['title', 'description', '$schema', '$id', '$comment', 'examples', 'default']);
const SUPPORTED = new Set([
  'type',
  'properties',
  'required',
  'additionalProperties',
  'items',
  'enum',
  'const',
  'anyOf',
  'minItems',
  'maxItems',
  'minLength',
  'maxLength',
  'pattern',
  'minimum',
  'maximum',
  '$ref',
  '$defs',
  'definitions',
]);
const TYPES = ['object', 'array', 'string', 'number', 'integer', 'boolean', 'null'] as const;
type JsonType = (typeof TYPES)[number];

/** Integers are at most 15 digits: |x| < 1e15, well inside JavaScript's safe integers. */
export const MAX_INTEGER_DIGITS = 15;
const SAFE = Number.MAX_SAFE_INTEGER;

/**
 * The grammar of a response_format (`text`, or none: undefined). Throws SchemaError naming the
 * keyword or limit at fault.
 */
export function compileResponseFormat(format: unknown): GrammarNode | undefined {
  if (format === undefined || format === null) return undefined;
  // Equal formats share one grammar, and so its token-mask cache (vocabulary.ts).
  const text = JSON.stringify(format);
  const cached = compiled.get(text);
  if (cached) return cached;
  const grammar = compile(format);
  if (grammar) {
    compiled.set(text, grammar);
    if (compiled.size > MAX_COMPILED) compiled.delete(compiled.keys().next().value!);
  }
  return grammar;
}

const MAX_COMPILED = 32;
const compiled = new Map<string, GrammarNode>();

function compile(format: unknown): GrammarNode | undefined {
  const f = format as { type?: unknown; json_schema?: { schema?: unknown } };
  if (typeof format !== 'object' || Array.isArray(format)) throw new SchemaError('response_format must be an object');
  if (f.type === 'text') return undefined;
  if (f.type === 'json_object') return { kind: 'object', props: [], values: ANY };
  if (f.type !== 'json_schema')
    throw new SchemaError(`response_format.type must be "text", "json_object" or "json_schema" (got ${str(f.type)})`);
  const spec = f.json_schema;
  if (typeof spec !== 'object' || spec === null) throw new SchemaError('response_format.json_schema is required');
  const schema = spec.schema ?? {};
  const bytes = utf8.encode(JSON.stringify(schema)).length;
  if (bytes > LIMITS.schemaBytes)
    throw new SchemaError(`the JSON schema is ${bytes} bytes, over the limit of ${LIMITS.schemaBytes}`);
  return new Compiler(schema).node(schema, '#', 0);
}

class Compiler {
  private nodes = 0;
  /** $ref targets being compiled: a ref back into one of them is recursion. */
  private readonly resolving: string[] = [];

  constructor(private readonly root: unknown) {}

  node(schema: unknown, at: string, depth: number): GrammarNode {
    if (++this.nodes > LIMITS.nodes)
      throw new SchemaError(`the JSON schema expands to over ${LIMITS.nodes} nodes ($ref counted at each use)`);
    if (depth > LIMITS.depth) throw new SchemaError(`the JSON schema nests deeper than ${LIMITS.depth} at ${at}`);
    if (schema === true) return ANY;
    if (typeof schema !== 'object' || schema === null || Array.isArray(schema))
      throw new SchemaError(`the schema at ${at} must be an object`);
    const s = schema as Record<string, unknown>;
    for (const key of Object.keys(s)) {
      if (!SUPPORTED.has(key) && !ANNOTATIONS.has(key))
        throw new SchemaError(`unsupported JSON Schema keyword "${key}" at ${at}`);
    }
    const constraints = Object.keys(s).filter((k) => SUPPORTED.has(k) && k !== '$defs' && k !== 'definitions');
    if ('$ref' in s) {
      if (constraints.length > 1) throw new SchemaError(`$ref with sibling keywords is not supported at ${at}`);
      return this.ref(s.$ref, at, depth);
    }
    if ('anyOf' in s) {
      if (constraints.length > 1) throw new SchemaError(`anyOf with sibling keywords is not supported at ${at}`);
      const options = s.anyOf;
      if (!Array.isArray(options) || options.length === 0)
        throw new SchemaError(`anyOf at ${at} must be a non-empty array`);
      if (options.length > LIMITS.anyOf) throw new SchemaError(`anyOf at ${at} has over ${LIMITS.anyOf} options`);
      return union(options.map((o, i) => this.node(o, `${at}/anyOf/${i}`, depth + 1)));
    }
    if ('const' in s) return { kind: 'literal', values: [literal(s.const, at)] };
    if ('enum' in s) {
      if (!Array.isArray(s.enum) || s.enum.length === 0)
        throw new SchemaError(`enum at ${at} must be a non-empty array`);
      if (s.enum.length > LIMITS.enumValues)
        throw new SchemaError(`enum at ${at} has ${s.enum.length} values, over ${LIMITS.enumValues}`);
      return { kind: 'literal', values: s.enum.map((v) => literal(v, at)) };
    }
    return union(this.types(s, at).map((t) => this.typed(t, s, at, depth)));
  }

  /** The types a schema allows: its `type`, else what its keywords imply, else any. */
  private types(s: Record<string, unknown>, at: string): Array<JsonType | 'any'> {
    if (s.type === undefined) {
      if ('properties' in s || 'required' in s || 'additionalProperties' in s) return ['object'];
      if ('items' in s || 'minItems' in s || 'maxItems' in s) return ['array'];
      if ('minLength' in s || 'maxLength' in s || 'pattern' in s) return ['string'];
      if ('minimum' in s || 'maximum' in s) return ['number'];
      return ['any'];
    }
    const types = Array.isArray(s.type) ? s.type : [s.type];
    if (types.length === 0) throw new SchemaError(`type at ${at} must not be empty`);
    for (const t of types) {
      if (!TYPES.includes(t)) throw new SchemaError(`unsupported type ${str(t)} at ${at}`);
    }
    return [...new Set(types as JsonType[])];
  }

  private typed(t: JsonType | 'any', s: Record<string, unknown>, at: string, depth: number): GrammarNode {
    switch (t) {
      case 'any':
        return ANY;
      case 'null':
        return { kind: 'literal', values: [utf8.encode('null')] };
      case 'boolean':
        return { kind: 'literal', values: [utf8.encode('true'), utf8.encode('false')] };
      case 'string': {
        const [minLength, maxLength] = bounds(s, 'minLength', 'maxLength', at);
        if (s.pattern === undefined) return { kind: 'string', minLength, maxLength };
        if (typeof s.pattern !== 'string') throw new SchemaError(`pattern at ${at} must be a string`);
        return { kind: 'string', minLength, maxLength, pattern: compilePattern(s.pattern, at) };
      }
      case 'number':
      case 'integer':
        return numberNode(t === 'integer', s, at);
      case 'array': {
        const [minItems, maxItems] = bounds(s, 'minItems', 'maxItems', at);
        const items = s.items === undefined ? ANY : this.node(s.items, `${at}/items`, depth + 1);
        return { kind: 'array', items, minItems, maxItems };
      }
      case 'object':
        return this.object(s, at, depth);
    }
  }

  private object(s: Record<string, unknown>, at: string, depth: number): GrammarNode {
    const properties = (s.properties ?? {}) as Record<string, unknown>;
    if (typeof properties !== 'object' || properties === null || Array.isArray(properties))
      throw new SchemaError(`properties at ${at} must be an object`);
    const names = Object.keys(properties);
    if (names.length > LIMITS.properties)
      throw new SchemaError(`properties at ${at} has ${names.length} entries, over ${LIMITS.properties}`);
    const required = s.required ?? [];
    if (!Array.isArray(required) || !required.every((r) => typeof r === 'string'))
      throw new SchemaError(`required at ${at} must be an array of property names`);
    for (const r of required) {
      if (!names.includes(r)) throw new SchemaError(`required property "${r}" at ${at} is not in properties`);
    }
    const extra = s.additionalProperties;
    if (names.length === 0) {
      // Free-form keys: their values follow additionalProperties (absent or true: anything).
      if (extra === false) return { kind: 'object', props: [] };
      return {
        kind: 'object',
        props: [],
        values: extra === undefined ? ANY : this.node(extra, `${at}/additionalProperties`, depth + 1),
      };
    }
    // With properties, only they are emitted: valid whatever additionalProperties allows.
    if (extra !== undefined && typeof extra !== 'boolean' && (typeof extra !== 'object' || extra === null))
      throw new SchemaError(`additionalProperties at ${at} must be a boolean or a schema`);
    return {
      kind: 'object',
      props: names.map((name) => ({
        name,
        key: utf8.encode(JSON.stringify(name)),
        value: this.node(properties[name], `${at}/properties/${name}`, depth + 1),
        required: required.includes(name),
      })),
    };
  }

  private ref(ref: unknown, at: string, depth: number): GrammarNode {
    const m = typeof ref === 'string' ? /^#\/(\$defs|definitions)\/([^/]+)$/.exec(ref) : null;
    if (!m && ref !== '#')
      throw new SchemaError(`$ref ${str(ref)} at ${at}: only "#/$defs/NAME" and "#/definitions/NAME"`);
    if (this.resolving.includes(String(ref)))
      throw new SchemaError(`recursive $ref ${str(ref)} at ${at} is not supported`);
    let target: unknown = this.root;
    if (m) {
      const defs = (this.root as Record<string, unknown>)[m[1]] as Record<string, unknown> | undefined;
      const name = m[2].replace(/~1/g, '/').replace(/~0/g, '~');
      if (!defs || typeof defs !== 'object' || !Object.hasOwn(defs, name))
        throw new SchemaError(`$ref ${str(ref)} at ${at} points to nothing`);
      target = defs[name];
    }
    this.resolving.push(String(ref));
    try {
      return this.node(target, String(ref), depth + 1);
    } finally {
      this.resolving.pop();
    }
  }
}

/**
 * number/integer. Bounds are refused unless they cut nothing the grammar emits (integers have at
 * most 15 digits, so zod's ±MAX_SAFE_INTEGER bounds are fine) or are `minimum: 0` (no minus sign).
 */
function numberNode(integer: boolean, s: Record<string, unknown>, at: string): GrammarNode {
  const { minimum, maximum } = s;
  if (minimum !== undefined && minimum !== 0 && !(typeof minimum === 'number' && minimum <= -SAFE))
    throw new SchemaError(`unsupported JSON Schema keyword "minimum" at ${at} (only 0 or <= -${SAFE})`);
  if (maximum !== undefined && !(typeof maximum === 'number' && maximum >= SAFE))
    throw new SchemaError(`unsupported JSON Schema keyword "maximum" at ${at} (only >= ${SAFE})`);
  // An exponent could reach past a bound: with one, a number is plain decimal digits.
  const bounded = minimum !== undefined || maximum !== undefined;
  return { kind: 'number', integer, nonNegative: minimum === 0, exponent: !integer && !bounded };
}

function union(options: GrammarNode[]): GrammarNode {
  if (options.length === 1) return options[0];
  if (options.some((o) => o.kind === 'any')) return ANY;
  return { kind: 'union', options };
}

function literal(value: unknown, at: string): Uint8Array {
  if (value === undefined || (typeof value === 'number' && !Number.isFinite(value)))
    throw new SchemaError(`enum/const at ${at} holds a value JSON cannot write`);
  return utf8.encode(JSON.stringify(value));
}

/** A [min, max] pair of counts (max Infinity when absent); min over max has no valid value. */
function bounds(s: Record<string, unknown>, minName: string, maxName: string, at: string): [number, number] {
  const min = count(s[minName], minName, at) ?? 0;
  const max = count(s[maxName], maxName, at) ?? Infinity;
  if (min > max) throw new SchemaError(`${minName} ${min} is over ${maxName} ${max} at ${at}`);
  return [min, max];
}

function count(v: unknown, name: string, at: string): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > LIMITS.count)
    throw new SchemaError(`${name} at ${at} must be an integer in [0, ${LIMITS.count}]`);
  return v;
}

const str = (v: unknown) => JSON.stringify(v) ?? String(v);
