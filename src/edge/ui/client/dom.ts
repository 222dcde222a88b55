/**
 * Browser module `/ui/assets/dom.js`: DOM building and formatting helpers for the dashboard.
 *
 * Client modules are plain JavaScript kept as strings (String.raw, so backslashes reach the browser
 * untouched): the Worker cannot read files at request time and there is no front-end build step.
 * Inside these strings: no backticks and no dollar-brace (they would end or interpolate the
 * template); test/ui/ui-route.test.ts parses every module to catch slips.
 */
export const domJs = String.raw`
// Every node is built with createElement and text nodes: nothing from the API (adapter names,
// model cards, model output) is ever parsed as HTML, so there is nothing to escape by hand.
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  setProps(el, props);
  append(el, children);
  return el;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

export function s(tag, props, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setProps(el, props);
  append(el, children);
  return el;
}

// Form state lives in properties, not attributes.
const PROPERTIES = new Set(['value', 'checked', 'disabled', 'selected', 'hidden']);

function setProps(el, props) {
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (key === 'testid') el.setAttribute('data-testid', String(value));
    else if (PROPERTIES.has(key)) el[key] = value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

export const enc = encodeURIComponent;

// ---- formatting ----

export function num(x, digits = 0) {
  if (x === null || x === undefined || Number.isNaN(x)) return '–';
  return Number(x).toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function sig(x, digits = 3) {
  if (x === null || x === undefined || Number.isNaN(x)) return '–';
  return Number(Number(x).toPrecision(digits)).toString();
}

export function ms(x) {
  return x === null || x === undefined ? '–' : num(x, x < 10 ? 1 : 0) + ' ms';
}

export function percent(x, digits = 1) {
  return x === null || x === undefined ? '–' : num(x * 100, digits) + ' %';
}

export function bytes(n) {
  if (n === null || n === undefined) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return (i ? v.toFixed(1) : String(v)) + ' ' + units[i];
}

export function interval(ci, fmt = sig) {
  return ci ? '[' + fmt(ci[0]) + ', ' + fmt(ci[1]) + ']' : 'no interval yet';
}

export function when(iso) {
  if (!iso) return '–';
  const d = new Date(iso);
  return d.toLocaleString('en-GB', { dateStyle: 'medium', timeStyle: 'medium' });
}

// ---- feedback to the user ----

// An alert region per view: API errors are shown (their JSON message), never swallowed.
export function errorBox() {
  return h('div', { class: 'error', role: 'alert', testid: 'error', hidden: true });
}

export function showError(box, err) {
  box.hidden = false;
  replace(box, err && err.message ? err.message : String(err));
}

export function clearError(box) {
  box.hidden = true;
  box.replaceChildren();
}

export function statusLine(testid) {
  return h('p', { class: 'status', role: 'status', testid: testid || 'status' });
}

// Runs a user action: the button is disabled while it runs; failures land in the error box.
export async function act(button, box, fn) {
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

export function badge(text, kind) {
  return h('span', { class: 'badge badge-' + (kind || text) }, text);
}

export function table(headers, rows, props) {
  return h('table', props || {},
    h('thead', {}, h('tr', {}, headers.map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, rows));
}

export function field(label, control, hint) {
  const id = control.id || 'f-' + Math.random().toString(36).slice(2, 9);
  control.id = id;
  return h('div', { class: 'field' }, h('label', { for: id }, label), control, hint ? h('small', {}, hint) : null);
}
`;
