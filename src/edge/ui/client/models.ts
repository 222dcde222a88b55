/** Browser module `/ui/assets/models.js`: base models, their versions and the adapters built on them. */
import { api, type Json } from './api.ts';
import { badge, bytes, enc, errorBox, h, num, replace, showError, table, when } from './dom.ts';

export function modelsView(): HTMLElement {
  const err = errorBox();
  const body = h('div', {}, h('p', {}, 'Loading…'));
  load().catch((e) => {
    replace(body);
    showError(err, e);
  });
  return h('section', { testid: 'models-view' }, h('h1', {}, 'Models'), err, body);

  async function load(): Promise<void> {
    const list = await api('GET', '/v1/models');
    const bases: Json[] = list.data.filter((m: Json) => m.kind === 'base');
    const servable = new Map<string, boolean | undefined>(list.data.map((m: Json) => [m.id, m.servable]));
    const adapters: Json[] = list.data.filter((m: Json) => m.kind === 'adapter' && !m.alias);
    const details: Json[] = await Promise.all(bases.map((m) => api('GET', `/v1/models/${enc(m.id)}`)));
    if (!details.length) {
      replace(body, h('p', {}, 'No base models yet: import one with versa import.'));
      return;
    }
    replace(
      body,
      details.map((m) => {
        const on = adapters.filter((a) => a.base && a.base.split('@')[0] === m.id);
        const versions = m.versions.map((v: Json) =>
          h(
            'tr',
            { testid: `model-version-${v.version}` },
            h('td', {}, v.ref),
            h('td', {}, v.architecture),
            h('td', { class: 'num' }, num(v.params)),
            h('td', { class: 'num' }, bytes(v.bytes)),
            h('td', {}, h('code', { class: 'hash' }, v.sha256)),
            h('td', {}, badge(v.status)),
            h('td', {}, when(v.created_at)),
          ),
        );
        return h(
          'article',
          { class: 'card', testid: `model-${m.id}` },
          h('h2', {}, m.id, ' ', served(servable.get(m.id))),
          m.description ? h('p', {}, m.description) : null,
          h(
            'p',
            {},
            'Owner ',
            m.owned_by,
            ' · latest version ',
            m.latest_version === null ? '–' : String(m.latest_version),
          ),
          table(['Version', 'Architecture', 'Parameters', 'Size', 'sha256', 'Status', 'Created'], versions),
          h('h3', {}, 'Adapters on ', m.id),
          on.length
            ? h(
                'ul',
                { class: 'inline' },
                on.map((a) =>
                  h(
                    'li',
                    {},
                    h('a', { href: `#/adapters/${enc(a.id)}` }, a.id),
                    ' (',
                    a.base,
                    ') ',
                    served(a.servable),
                  ),
                ),
              )
            : h('p', {}, 'None yet.'),
        );
      }),
    );
  }
}

/** Whether a compute node serves it now (GET /v1/models' `servable`; absent from a registry alone). */
function served(servable: boolean | undefined): HTMLElement | null {
  if (servable === undefined) return null;
  return servable ? badge('servable', 'active') : badge('no compute node', 'yanked');
}
