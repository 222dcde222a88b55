/** Browser module `/ui/assets/app.js`: the key panel, navigation and the hash router. */
export const appJs = String.raw`
import { api, forgetKey, getKey, setKey, takeKeyFromFragment } from './api.js';
import { act, errorBox, field, h, replace } from './dom.js';
import { modelsView } from './models.js';
import { adapterView, adaptersView } from './adapters.js';
import { experimentView, experimentsView } from './experiments.js';
import { playgroundView } from './playground.js';

// Routes live in the fragment (#/adapters/NAME), so the one /ui page serves every view.
/** @type {Array<[RegExp, (m: RegExpExecArray) => (ctx: { signal: AbortSignal, params: URLSearchParams }) => Node]>} */
const ROUTES = [
  [/^\/models$/, () => modelsView],
  [/^\/adapters$/, () => adaptersView],
  [/^\/adapters\/([^/]+)$/, (m) => (ctx) => adapterView(ctx, decodeURIComponent(m[1]))],
  [/^\/experiments(?:\/([^/]+))?$/, (m) => (ctx) => experimentsView(ctx, m[1] ? decodeURIComponent(m[1]) : '')],
  [/^\/experiment\/([^/]+)$/, (m) => (ctx) => experimentView(ctx, decodeURIComponent(m[1]))],
  [/^\/playground$/, () => playgroundView],
];

const NAV = [['#/models', 'Models'], ['#/adapters', 'Adapters'], ['#/experiments', 'Experiments'], ['#/playground', 'Playground']];

const main = document.getElementById('view');
const keyPanel = document.getElementById('key-panel');
const nav = document.getElementById('nav');
let current = null;

function parseHash() {
  const raw = location.hash.replace(/^#/, '') || '/adapters';
  const [path, qs] = raw.split('?');
  return { path, params: new URLSearchParams(qs || '') };
}

function renderNav(path) {
  replace(nav, h('ul', {}, NAV.map(([href, label]) => {
    // '/experiment/ID' belongs to Experiments, '/adapters/NAME' to Adapters.
    const active = path.startsWith(href.slice(1).replace(/s$/, ''));
    return h('li', {}, h('a', { href, 'aria-current': active ? 'page' : null, testid: 'nav-' + label.toLowerCase() }, label));
  })));
}

function route() {
  if (current) current.abort();
  current = new AbortController();
  const { path, params } = parseHash();
  renderNav(path);
  if (!getKey()) return replace(main, keyForm());
  let view = null;
  for (const [re, make] of ROUTES) {
    const m = re.exec(path);
    if (m) { view = make(m); break; }
  }
  if (!view) {
    replace(main, h('h1', { tabindex: '-1' }, 'Not found'), h('p', {}, 'No view at ' + path + '. '), h('a', { href: '#/adapters' }, 'Go to adapters'));
  } else {
    replace(main, view({ signal: current.signal, params }));
  }
  // Keyboard and screen-reader users land on the new view's heading.
  const heading = main.querySelector('h1');
  if (heading) { heading.setAttribute('tabindex', '-1'); heading.focus({ preventScroll: true }); }
}

function keyForm() {
  const err = errorBox();
  const input = h('input', { type: 'password', name: 'key', autocomplete: 'off', spellcheck: 'false', placeholder: 'vsk_...', required: true, testid: 'key-input' });
  const button = h('button', { type: 'submit', testid: 'key-save' }, 'Use this key');
  const form = h('form', {
    class: 'card', testid: 'key-form',
    onsubmit: (e) => {
      e.preventDefault();
      act(button, err, async () => {
        const previous = getKey();
        setKey(input.value);
        try {
          await api('GET', '/v1/whoami');
        } catch (e) {
          if (previous) setKey(previous); else forgetKey();
          throw e;
        }
        await showWhoami();
        route();
      });
    },
  },
  h('h1', {}, 'API key'),
  h('p', {}, 'The dashboard calls this server\'s API with your key. It is kept in this browser (localStorage) and sent to this origin only.'),
  field('API key', input), err, button);
  return form;
}

async function showWhoami() {
  if (!getKey()) return replace(keyPanel, h('span', {}, 'No API key'));
  const err = errorBox();
  const change = h('button', { type: 'button', class: 'link', onclick: () => replace(main, keyForm()) }, 'Change key');
  const forget = h('button', { type: 'button', class: 'link', testid: 'key-forget', onclick: () => { forgetKey(); showWhoami(); route(); } }, 'Forget key');
  try {
    const me = await api('GET', '/v1/whoami');
    replace(keyPanel, h('span', { testid: 'whoami' }, 'Key ', h('strong', {}, me.key_name), ' · tenant ', me.tenant, ' · ', me.scopes.join(', ')), change, forget);
  } catch (e) {
    replace(keyPanel, err, change, forget);
    err.hidden = false;
    replace(err, 'Key refused: ' + e.message);
  }
}

takeKeyFromFragment();
window.addEventListener('hashchange', route);
showWhoami();
route();
`;
