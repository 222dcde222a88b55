/** Browser module `/ui/assets/dom.js`: DOM building and formatting helpers for the dashboard. */

/** What h() and s() take as children: nodes, text and nested lists of them; null, undefined and false are skipped. */
export type Child = Node | string | number | boolean | null | undefined | readonly Child[];

/** A click on a button: every onclick in the dashboard sits on a button, which actions disable while they run. */
export type ButtonEvent = { currentTarget: HTMLButtonElement };

/** Attributes and properties for h() and s(); on* functions become event listeners, testid is data-testid. */
export interface Props {
  [name: string]: unknown;
  onclick?: (e: MouseEvent & ButtonEvent) => unknown;
  onsubmit?: (e: SubmitEvent) => unknown;
}

/** What the router hands every view: aborted when the user leaves it, and the query of the fragment. */
export interface ViewContext {
  signal: AbortSignal;
  params: URLSearchParams;
}

// Every node is built with createElement and text nodes: nothing from the API (adapter names,
// model cards, model output) is ever parsed as HTML, so there is nothing to escape by hand.
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props?: Props | null,
  ...children: Child[]
): HTMLElementTagNameMap[K];
export function h(tag: string, props?: Props | null, ...children: Child[]): HTMLElement;
export function h(tag: string, props?: Props | null, ...children: Child[]): HTMLElement {
  const el = document.createElement(tag);
  setProps(el, props);
  append(el, children);
  return el;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

export function s<K extends keyof SVGElementTagNameMap>(
  tag: K,
  props?: Props | null,
  ...children: Child[]
): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG_NS, tag);
  setProps(el, props);
  append(el, children);
  return el;
}

// Form state lives in properties, not attributes.
const PROPERTIES = new Set(['value', 'checked', 'disabled', 'selected', 'hidden']);

function setProps(el: Element, props: Props | null | undefined): void {
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value as EventListener);
    else if (key === 'testid') el.setAttribute('data-testid', String(value));
    else if (PROPERTIES.has(key)) Reflect.set(el, key, value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
}

function append<E extends Element>(el: E, children: Child[]): E {
  // unknown[]: flattening the recursive Child type to any depth is too deep for the type checker.
  for (const child of (children as unknown[]).flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function replace<E extends Element>(el: E, ...children: Child[]): E {
  el.replaceChildren();
  return append(el, children);
}

export const enc = encodeURIComponent;

// ---- formatting ----

/** A number from the API; absent ones (null, or missing from the JSON) show as a dash. */
type Maybe = number | null | undefined;

export function num(x: Maybe, digits = 0): string {
  if (x === null || x === undefined || Number.isNaN(x)) return '–';
  return Number(x).toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function sig(x: Maybe, digits = 3): string {
  if (x === null || x === undefined || Number.isNaN(x)) return '–';
  return Number(Number(x).toPrecision(digits)).toString();
}

export function ms(x: Maybe): string {
  return x === null || x === undefined ? '–' : `${num(x, x < 10 ? 1 : 0)} ms`;
}

export function percent(x: Maybe, digits = 1): string {
  return x === null || x === undefined ? '–' : `${num(x * 100, digits)} %`;
}

export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

export function bytes(n: Maybe): string {
  if (n === null || n === undefined) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i ? v.toFixed(1) : String(v)} ${units[i]}`;
}

export function interval(ci: readonly number[] | null | undefined, fmt: (x: number) => string = sig): string {
  return ci ? `[${fmt(ci[0])}, ${fmt(ci[1])}]` : 'no interval yet';
}

export function when(iso: string | null | undefined): string {
  if (!iso) return '–';
  const d = new Date(iso);
  return d.toLocaleString('en-GB', { dateStyle: 'medium', timeStyle: 'medium' });
}

// ---- feedback to the user ----

// An alert region per view: API errors are shown (their JSON message), never swallowed.
export function errorBox(): HTMLDivElement {
  return h('div', { class: 'error', role: 'alert', testid: 'error', hidden: true });
}

export function showError(box: HTMLElement, err: unknown): void {
  box.hidden = false;
  const message = (err as { message?: string } | null | undefined)?.message;
  replace(box, message || String(err));
}

export function clearError(box: HTMLElement): void {
  box.hidden = true;
  box.replaceChildren();
}

export function statusLine(testid?: string): HTMLParagraphElement {
  return h('p', { class: 'status', role: 'status', testid: testid || 'status' });
}

// Runs a user action: the button is disabled while it runs; failures land in the error box.
export async function act<T>(
  button: { disabled: boolean } | null,
  box: HTMLElement,
  fn: () => T | Promise<T>,
): Promise<T | undefined> {
  if (button) button.disabled = true;
  clearError(box);
  try {
    return await fn();
  } catch (e) {
    showError(box, e);
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}

export function badge(text: string, kind?: string): HTMLSpanElement {
  return h('span', { class: `badge badge-${kind || text}` }, text);
}

export function table(headers: string[], rows: Child, props?: Props): HTMLTableElement {
  return h(
    'table',
    props || {},
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        headers.map((t) => h('th', { scope: 'col' }, t)),
      ),
    ),
    h('tbody', {}, rows),
  );
}

export function field(label: string, control: HTMLElement, hint?: string): HTMLDivElement {
  const id = control.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  control.id = id;
  return h('div', { class: 'field' }, h('label', { for: id }, label), control, hint ? h('small', {}, hint) : null);
}
