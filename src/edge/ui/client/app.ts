/** Browser module `/ui/assets/app.js`: the key panel, navigation and the hash router. */
import { api, forgetKey, getKey, setKey, takeKeyFromFragment } from './api.ts';
import { act, errorBox, field, h, replace, type ViewContext } from './dom.ts';
import { modelsView } from './models.ts';
import { adapterView, adaptersView } from './adapters.ts';
import { experimentView, experimentsView } from './experiments.ts';
import { playgroundView } from './playground.ts';

type View = (ctx: ViewContext) => Node;

// Routes live in the fragment (#/adapters/NAME), so the one /ui page serves every view.
const ROUTES: Array<[RegExp, (m: RegExpExecArray) => View]> = [
  [/^\/models$/, () => modelsView],
  [/^\/adapters$/, () => adaptersView],
  [/^\/adapters\/([^/]+)$/, (m) => (ctx) => adapterView(ctx, decodeURIComponent(m[1]))],
  [/^\/experiments(?:\/([^/]+))?$/, (m) => (ctx) => experimentsView(ctx, m[1] ? decodeURIComponent(m[1]) : '')],
  [/^\/experiment\/([^/]+)$/, (m) => (ctx) => experimentView(ctx, decodeURIComponent(m[1]))],
  [/^\/playground$/, () => playgroundView],
];

const NAV = [
  ['#/models', 'Models'],
  ['#/adapters', 'Adapters'],
  ['#/experiments', 'Experiments'],
  ['#/playground', 'Playground'],
];

// The page shell (page.ts) always has these.
const main = document.getElementById('view')!;
const keyPanel = document.getElementById('key-panel')!;
const nav = document.getElementById('nav')!;
let current: AbortController | null = null;

function parseHash(): { path: string; params: URLSearchParams } {
  const raw = location.hash.replace(/^#/, '') || '/adapters';
  const [path, qs] = raw.split('?');
  return { path, params: new URLSearchParams(qs || '') };
}

function renderNav(path: string): void {
  replace(
    nav,
    h(
      'ul',
      {},
      NAV.map(([href, label]) => {
        // '/experiment/ID' belongs to Experiments, '/adapters/NAME' to Adapters.
        const active = path.startsWith(href.slice(1).replace(/s$/, ''));
        return h(
          'li',
          {},
          h('a', { href, 'aria-current': active ? 'page' : null, testid: `nav-${label.toLowerCase()}` }, label),
        );
      }),
    ),
  );
}

function route(): void {
  if (current) current.abort();
  current = new AbortController();
  const { path, params } = parseHash();
  renderNav(path);
  if (!getKey()) {
    replace(main, keyForm());
    return;
  }
  let view: View | null = null;
  for (const [re, make] of ROUTES) {
    const m = re.exec(path);
    if (m) {
      view = make(m);
      break;
    }
  }
  if (!view) {
    replace(
      main,
      h('h1', { tabindex: '-1' }, 'Not found'),
      h('p', {}, `No view at ${path}. `),
      h('a', { href: '#/adapters' }, 'Go to adapters'),
    );
  } else {
    replace(main, view({ signal: current.signal, params }));
  }
  // Keyboard and screen-reader users land on the new view's heading.
  const heading = main.querySelector('h1');
  if (heading) {
    heading.setAttribute('tabindex', '-1');
    heading.focus({ preventScroll: true });
  }
}

function keyForm(): HTMLFormElement {
  const err = errorBox();
  const input = h('input', {
    type: 'password',
    name: 'key',
    autocomplete: 'off',
    spellcheck: 'false',
    placeholder: 'vsk_...',
    required: true,
    testid: 'key-input',
  });
  const button = h('button', { type: 'submit', testid: 'key-save' }, 'Use this key');
  const form = h(
    'form',
    {
      class: 'card',
      testid: 'key-form',
      onsubmit: (e) => {
        e.preventDefault();
        act(button, err, async () => {
          const previous = getKey();
          setKey(input.value);
          try {
            await api('GET', '/v1/whoami');
          } catch (e) {
            if (previous) setKey(previous);
            else forgetKey();
            throw e;
          }
          await showWhoami();
          route();
        });
      },
    },
    h('h1', {}, 'API key'),
    h(
      'p',
      {},
      "The dashboard calls this server's API with your key. " +
        'It is kept in this browser (localStorage) and sent to this origin only.',
    ),
    field('API key', input),
    err,
    button,
  );
  return form;
}

async function showWhoami(): Promise<void> {
  if (!getKey()) {
    replace(keyPanel, h('span', {}, 'No API key'));
    return;
  }
  const err = errorBox();
  const change = h('button', { type: 'button', class: 'link', onclick: () => replace(main, keyForm()) }, 'Change key');
  const forget = h(
    'button',
    {
      type: 'button',
      class: 'link',
      testid: 'key-forget',
      onclick: () => {
        forgetKey();
        showWhoami();
        route();
      },
    },
    'Forget key',
  );
  try {
    const me = await api('GET', '/v1/whoami');
    const who = ['Key ', h('strong', {}, me.key_name), ' · tenant ', me.tenant, ' · ', me.scopes.join(', ')];
    replace(keyPanel, h('span', { testid: 'whoami' }, who), change, forget);
  } catch (e) {
    replace(keyPanel, err, change, forget);
    err.hidden = false;
    replace(err, `Key refused: ${(e as Error).message}`);
  }
}

takeKeyFromFragment();
window.addEventListener('hashchange', route);
showWhoami();
route();
