import { Environment, Interpreter, type Template } from '@huggingface/jinja';

/**
 * A budget for rendering a Jinja template that a tenant wrote: enforced WHILE it renders, in the
 * interpreter itself, so it holds in a Worker (no threads to kill) as on Node. @huggingface/jinja
 * has no limits of its own; here, while a budgeted render runs (renders are synchronous, so one
 * at a time), its interpreter
 *
 * - counts steps (syntax-tree nodes evaluated);
 * - charges its work: each value made costs its size (characters, ITEM per list item or mapping
 *   entry), each comparison, search or filter the size of its operands, each for loop its items;
 * - refuses any one value over `value` (the output included), checked as each value is made;
 * - checks BEFORE they run the builtins whose result can be far larger than their inputs:
 *   `range(n)`, `str.replace`/`|replace`, `str.split`, `|indent`, `|join(sep)`, `|tojson`/`|string`,
 *   and charges `|sort` its n·log n.
 *
 * Over budget, the render stops with a TemplateBudgetError (the edge answers 422
 * `template_budget_exceeded`); nothing outlives the render.
 */
interface TemplateBudget {
  /** Syntax-tree nodes evaluated. */
  steps: number;
  /** Work units (about one per character copied or compared): see the charges above. */
  work: number;
  /** The weight of any one value, the rendered text included (characters). */
  value: number;
}

const TEMPLATE_BUDGET: TemplateBudget = { steps: 100_000, work: 64 * 1024 * 1024, value: 4 * 1024 * 1024 };

/** The weight of one list item or mapping entry beyond its contents: a runtime value is an object, not a character. */
const ITEM = 64;
/** The cost of one for-loop item beyond it: the interpreter sets up a scope for each before the first iteration. */
const LOOP_ITEM = 1024;
/** The cost of a JavaScript callback the interpreter runs per match (replace() calls one for each). */
const CALLBACK = 256;

export class TemplateBudgetError extends Error {
  override name = 'TemplateBudgetError';
}

/** A value of the interpreter (its runtime classes are not exported; their `type` names them). */
interface Value {
  type: string;
  value: unknown;
  builtins: Map<string, Value>;
}
type Node = { type: string; args?: unknown[]; callee?: { value: string }; value?: unknown; [key: string]: unknown };
type Fn = (...args: unknown[]) => unknown;

const LISTS = new Set(['ArrayValue', 'TupleValue']);
const MAPPINGS = new Set(['ObjectValue', 'KeywordArgumentsValue', 'NamespaceValue']);

/** Nodes whose work grows with the size of their operands (`in` and `==` scan, filters walk their operand). */
const SCANS: Record<string, string[]> = {
  BinaryExpression: ['left', 'right'],
  FilterExpression: ['operand'],
};

/** The operators that compare or search their operands (the others make a new value, charged as made). */
const SCANNING = new Set(['in', 'not in', '==', '!=', '<', '>', '<=', '>=']);

/** What one pass over a value costs: a character each, ITEM per list item or mapping entry. */
function scanCost(v: Value): number {
  return v.type === 'StringValue' ? size(v) : size(v) * ITEM;
}

/** Characters of a string, or items of a list or mapping. */
function size(v: Value): number {
  if (v.type === 'StringValue') return (v.value as string).length;
  if (LISTS.has(v.type)) return (v.value as Value[]).length;
  if (MAPPINGS.has(v.type)) return (v.value as Map<string, Value>).size;
  return 1;
}

/** The meter of one render. */
class Meter {
  private steps = 0;
  private work = 0;
  private readonly weights = new WeakMap<object, number>();
  private readonly seen = new WeakSet<object>();
  /** The value each syntax-tree node yielded last: what its parent operated on. */
  private readonly last = new WeakMap<object, Value>();
  private readonly iterables = new WeakSet<object>();
  /** Filter operands waiting for their arguments, keyed by the filter's argument list (see evaluateArguments). */
  readonly pending = new Map<unknown, { name: string; operand: Value }>();

  constructor(readonly budget: TemplateBudget) {}

  step(): void {
    if (++this.steps > this.budget.steps)
      throw new TemplateBudgetError(`the chat template ran over its budget of ${this.budget.steps} steps`);
  }

  charge(units: number): void {
    this.work += units;
    if (this.work > this.budget.work)
      throw new TemplateBudgetError(
        `the chat template ran over its work budget of ${this.budget.work} units (characters and items handled)`,
      );
  }

  /** Refuses, before it is made, a value that would weigh `weight`. */
  allow(weight: number, what: string): void {
    if (!(weight <= this.budget.value))
      throw new TemplateBudgetError(`the chat template's ${what} would be over ${this.budget.value} characters`);
  }

  /**
   * After `node` yielded `v`: a value seen for the first time was just made, so it is charged its
   * weight (and refused over the limit); a node that scans its operands is charged their sizes.
   */
  yielded(node: Node, v: Value): Value {
    if (node) this.last.set(node, v); // (the interpreter evaluates absent nodes too)
    if (!this.seen.has(v)) {
      this.allow(this.weigh(v), 'value');
      this.charge(this.made(v));
    }
    if (!node) return v;
    // A for loop sets up every item before its first iteration: charged as soon as its list is known.
    if (this.iterables.has(node)) this.charge(size(v) * LOOP_ITEM);
    if (node.type === 'BinaryExpression' && !SCANNING.has((node.operator as Node).value as string)) return v;
    for (const key of SCANS[node.type] ?? []) {
      const scanned = this.last.get(node[key] as Node);
      if (scanned) this.charge(scanCost(scanned));
    }
    return v;
  }

  /** Before a for loop runs: note the node whose value it will iterate over. */
  loop(node: Node): void {
    const iterable = node.iterable as Node;
    this.iterables.add(iterable.type === 'SelectExpression' ? (iterable.lhs as Node) : iterable); // `for x in xs if t`
  }

  /** What making `v` cost: its own characters and items, and those of the values made with it (not those it reuses). */
  private made(v: Value): number {
    if (this.seen.has(v)) return 0;
    this.seen.add(v);
    if (v.type === 'StringValue') return (v.value as string).length;
    let cost = 1;
    if (LISTS.has(v.type)) for (const item of v.value as Value[]) cost += ITEM + this.made(item);
    else if (MAPPINGS.has(v.type))
      for (const [key, item] of v.value as Map<string, Value>) cost += ITEM + key.length + this.made(item);
    return cost;
  }

  /**
   * Characters, plus ITEM per list item or mapping entry, with their contents. Lists and mappings
   * are immutable in the interpreter, so a weight is computed once per value; a namespace (the one
   * mutable value) weighs what it holds now: its values were weighed when they were assigned.
   */
  weigh(v: Value): number {
    if (v.type === 'StringValue') return (v.value as string).length;
    const isList = LISTS.has(v.type);
    if (!isList && !MAPPINGS.has(v.type)) return 1;
    const known = this.weights.get(v);
    if (known !== undefined) return known;
    let weight = 1;
    if (isList)
      for (const item of v.value as Value[]) weight += ITEM + (item.type === 'NamespaceValue' ? 1 : this.weigh(item));
    else
      for (const [key, item] of v.value as Map<string, Value>)
        weight += ITEM + key.length + (item.type === 'NamespaceValue' ? 1 : this.weigh(item));
    if (v.type !== 'NamespaceValue') this.weights.set(v, weight);
    return weight;
  }

  /**
   * Refuses a JSON text that would be over the limit, walking the value (namespaces included) and
   * stopping as soon as it is: at most `budget.value` characters and nodes visited, charged as work.
   */
  allowJson(v: Value, o: { indent: number; itemSep: number; keySep: number; ascii: boolean }): void {
    const limit = this.budget.value;
    let length = 0;
    const add = (n: number) => {
      length += n;
      if (length > limit) {
        this.charge(limit);
        this.allow(length, 'JSON text');
      }
    };
    const text = (s: string) => {
      add(s.length + 2);
      let extra = 0; // escapes: \uXXXX at most, for control characters, quotes, backslashes (and non-ASCII)
      for (let i = 0; i < s.length; i++) {
        const c = s.charCodeAt(i);
        if (c < 0x20 || c === 0x22 || c === 0x5c || (o.ascii && c > 0x7e)) extra += 5;
      }
      add(extra);
    };
    const walk = (x: Value, depth: number) => {
      const line = o.indent ? 1 + o.indent * (depth + 1) : 0;
      if (x.type === 'StringValue') return text(x.value as string);
      if (LISTS.has(x.type)) {
        add(2 + line);
        for (const item of x.value as Value[]) {
          add(o.itemSep + line);
          walk(item, depth + 1);
        }
      } else if (MAPPINGS.has(x.type)) {
        add(2 + line);
        for (const [key, item] of x.value as Map<string, Value>) {
          add(o.itemSep + o.keySep + line);
          text(key);
          walk(item, depth + 1);
        }
      } else add(24); // a number, boolean or null
    };
    walk(v, 0);
    this.charge(length);
  }
}

/** The meter of the render now running, if it is a budgeted one. */
let active: Meter | undefined;

export function renderWithinBudget(
  template: Template,
  context: Record<string, unknown>,
  budget: TemplateBudget = TEMPLATE_BUDGET,
): string {
  const outer = active;
  active = new Meter(budget);
  try {
    return template.render(context);
  } finally {
    active = outer;
  }
}

// --- The interpreter's bounds, installed once; each is inert unless a budgeted render is running. ---

const interpreter = Interpreter.prototype as unknown as Record<string, Fn>;
for (const name of ['evaluate', 'applyFilter', 'evaluateArguments'])
  if (typeof interpreter[name] !== 'function')
    throw new Error(`@huggingface/jinja changed: Interpreter.${name} is gone (see template-budget.ts)`);

const evaluate = interpreter.evaluate;
interpreter.evaluate = function (this: unknown, ...args: unknown[]) {
  const meter = active;
  if (!meter) return evaluate.apply(this, args);
  meter.step();
  if ((args[0] as Node | undefined)?.type === 'For') meter.loop(args[0] as Node);
  return meter.yielded(args[0] as Node, evaluate.apply(this, args) as Value);
};

const applyFilter = interpreter.applyFilter;
interpreter.applyFilter = function (this: unknown, operand: Value, filter: Node, environment: unknown) {
  const meter = active;
  if (!meter) return applyFilter.call(this, operand, filter, environment);
  const called = filter.type === 'CallExpression';
  const name = called ? filter.callee!.value : String(filter.value);
  beforeFilter(meter, name, operand, called);
  if (!called) return applyFilter.call(this, operand, filter, environment);
  meter.pending.set(filter.args, { name, operand });
  try {
    return applyFilter.call(this, operand, filter, environment);
  } finally {
    meter.pending.delete(filter.args);
  }
} as Fn;

// A filter's arguments are evaluated inside the filter, just before it runs: check them there.
const evaluateArguments = interpreter.evaluateArguments;
interpreter.evaluateArguments = function (this: unknown, args: unknown[], environment: unknown) {
  const meter = active;
  const filter = meter?.pending.get(args);
  const evaluated = evaluateArguments.call(this, args, environment) as [Value[], Map<string, Value>];
  if (meter && filter) beforeFilterCall(meter, filter.name, filter.operand, ...evaluated);
  return evaluated;
} as Fn;

function beforeFilter(meter: Meter, name: string, operand: Value, called: boolean): void {
  const n = LISTS.has(operand.type) ? (operand.value as Value[]).length : 0;
  if (name === 'sort') meter.charge(n * Math.ceil(Math.log2(n + 1)) * ITEM);
  if (called) return;
  if (name === 'tojson' || (name === 'string' && operand.type !== 'StringValue'))
    meter.allowJson(operand, { indent: 0, itemSep: 2, keySep: 2, ascii: false });
  if (name === 'indent' && operand.type === 'StringValue') allowIndent(meter, operand.value as string, 4);
}

function beforeFilterCall(meter: Meter, name: string, operand: Value, args: Value[], kwargs: Map<string, Value>) {
  const arg = (i: number, key: string) => args[i] ?? kwargs.get(key);
  if (name === 'indent' && operand.type === 'StringValue') {
    const width = arg(0, 'width');
    if (width?.type === 'IntegerValue') allowIndent(meter, operand.value as string, width.value as number);
  } else if (name === 'join') {
    const sep = arg(0, 'separator');
    const items =
      operand.type === 'StringValue'
        ? (operand.value as string).length
        : LISTS.has(operand.type)
          ? (operand.value as Value[]).length
          : 0;
    if (sep?.type === 'StringValue')
      meter.allow(meter.weigh(operand) + Math.max(0, items - 1) * (sep.value as string).length, 'joined text');
  } else if (name === 'tojson') {
    const indent = kwargs.get('indent');
    const separators = kwargs.get('separators');
    const [itemSep, keySep] = LISTS.has(separators?.type ?? '')
      ? (separators!.value as Value[]).map((s) => String(s.value).length)
      : [2, 2];
    meter.allowJson(operand, {
      indent: indent?.type === 'IntegerValue' ? Math.max(0, indent.value as number) : 0,
      itemSep: itemSep ?? 2,
      keySep: keySep ?? 2,
      ascii: kwargs.get('ensure_ascii')?.value === true,
    });
  }
}

function allowIndent(meter: Meter, text: string, width: number): void {
  let lines = 1;
  for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) lines++;
  meter.charge(lines);
  meter.allow(text.length + lines * Math.max(0, width), 'indented text');
}

// `range(n)` is a global the template environment is given: bound n before the list is made.
const environment = Environment.prototype as unknown as Record<string, Fn>;
const set = environment.set;
environment.set = function (this: unknown, name: unknown, value: unknown) {
  if (name === 'range' && typeof value === 'function') return set.call(this, name, boundedRange(value as Fn));
  return set.call(this, name, value);
};

function boundedRange(range: Fn): Fn {
  return (...args: unknown[]) => {
    const meter = active;
    if (meter) {
      const [a, b, c] = args.map(Number);
      const [start, stop, step] = args.length < 2 ? [0, a, 1] : [a, b, args.length < 3 ? 1 : c];
      const length = step ? Math.ceil((stop - start) / step) : 0;
      if (length > 0) {
        meter.allow(1 + length * (ITEM + 1), `range() of ${length} numbers`);
        meter.charge(length);
      }
    }
    return range(...args);
  };
}

// String methods whose result can outgrow their input: check the result's size before they run.
const stringValue = Object.getPrototypeOf(new Environment().set('s', '')) as object;
const FunctionValue = (new Environment().set('f', () => null) as object).constructor as new (
  fn: (args: Value[], scope: unknown) => Value,
) => Value;
const builtins = Object.getOwnPropertyDescriptor(stringValue, 'builtins')?.get;
if (!builtins) throw new Error('@huggingface/jinja changed: StringValue.builtins is gone (see template-budget.ts)');
const guarded = new WeakSet<Map<string, Value>>();
Object.defineProperty(stringValue, 'builtins', {
  configurable: true,
  get(this: Value) {
    const map = builtins.call(this) as Map<string, Value>;
    if (!guarded.has(map)) {
      guarded.add(map);
      const text = this.value as string;
      for (const [name, check] of [
        ['replace', beforeReplace],
        ['split', beforeSplit],
      ] as const) {
        const original = map.get(name)!;
        const fn = original.value as (args: Value[], scope: unknown) => Value;
        map.set(
          name,
          new FunctionValue((args, scope) => {
            if (active) check(active, text, args);
            return fn(args, scope);
          }),
        );
      }
    }
    return map;
  },
});

function beforeReplace(meter: Meter, text: string, args: Value[]): void {
  const [from, to, last] = args;
  if (from?.type !== 'StringValue' || to?.type !== 'StringValue') return; // the builtin refuses these
  const old = from.value as string;
  const count = last?.type === 'KeywordArgumentsValue' ? (last.value as Map<string, Value>).get('count') : last;
  const most = count?.type === 'IntegerValue' && (count.value as number) >= 0 ? (count.value as number) : Infinity;
  const matches = Math.min(most, occurrences(text, old));
  meter.charge(text.length + matches * CALLBACK);
  meter.allow(text.length + matches * ((to.value as string).length - old.length), 'replace() result');
}

function beforeSplit(meter: Meter, text: string, args: Value[]): void {
  const sep = args[0];
  const pieces = sep?.type === 'StringValue' ? occurrences(text, sep.value as string) + 1 : whitespace(text) + 1;
  meter.charge(text.length + pieces);
  meter.allow(text.length + pieces * ITEM, 'split() result');
}

/** Non-overlapping occurrences of `part` (for '', the positions between code units: an upper bound). */
function occurrences(text: string, part: string): number {
  if (!part) return text.length + 1;
  let n = 0;
  for (let i = text.indexOf(part); i !== -1; i = text.indexOf(part, i + part.length)) n++;
  return n;
}

/** Characters that JavaScript's \s matches (what split() without a separator splits on). */
function whitespace(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if ((c >= 9 && c <= 13) || c === 32 || (c >= 0xa0 && WIDE_SPACE.test(text[i]))) n++;
  }
  return n;
}
const WIDE_SPACE = /\s/;
