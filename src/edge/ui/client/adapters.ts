/**
 * Browser module `/ui/assets/adapters.js`: the adapter list (search and filters) and one adapter's
 * page: versions with status actions, a version's details and model card, aliases with their
 * history and one-click rollback.
 */
import { api, query, request, type Json } from './api.ts';
import {
  act,
  badge,
  bytes,
  enc,
  errorBox,
  field,
  h,
  num,
  plural,
  replace,
  showError,
  sig,
  statusLine,
  table,
  when,
  type Child,
  type ViewContext,
} from './dom.ts';
import { markdown } from './markdown.ts';

const pct = (x: number) => `${sig(x, 3)} %`;
// A change's answer may carry x-versa-warning (e.g. an alias moved onto a deprecated version).
const warned = (warning: string | null) => (warning ? ` Warning: ${warning}` : '');

export function adaptersView({ params }: ViewContext): HTMLElement {
  const err = errorBox();
  const q = h('input', { type: 'search', name: 'q', value: params.get('q') || '', testid: 'adapter-search' });
  const base = h('input', {
    type: 'text',
    name: 'base',
    value: params.get('base') || '',
    placeholder: 'MODEL or MODEL@VERSION',
    testid: 'adapter-filter-base',
  });
  const task = h('input', {
    type: 'text',
    name: 'task',
    value: params.get('task') || '',
    testid: 'adapter-filter-task',
  });
  const tbody = h('tbody');
  const more = h('button', { type: 'button', hidden: true, testid: 'adapters-more' }, 'Load more');
  const count = statusLine('adapters-count');
  let cursor: string | null = null;
  let shown = 0;

  const form = h(
    'form',
    {
      class: 'filters',
      role: 'search',
      onsubmit: (e) => {
        e.preventDefault();
        // The filters live in the address, so a search can be bookmarked and Back works.
        location.hash = `#/adapters${query({ q: q.value.trim(), base: base.value.trim(), task: task.value.trim() })}`;
      },
    },
    field('Search', q, 'name, task, description, card or dataset'),
    field('Base model', base),
    field('Task', task),
    h('button', { type: 'submit', testid: 'adapter-search-submit' }, 'Search'),
  );

  const load = () =>
    act(more, err, async () => {
      const filters = { q: params.get('q'), base: params.get('base'), task: params.get('task'), cursor, limit: 50 };
      const page = await api('GET', `/v1/adapters${query(filters)}`);
      for (const a of page.data) tbody.append(row(a));
      shown += page.data.length;
      cursor = page.next_cursor;
      more.hidden = !page.has_more;
      replace(count, shown ? plural(shown, 'adapter') + (page.has_more ? ' so far' : '') : 'No adapters match.');
    });
  more.addEventListener('click', load);
  load();

  const columns = ['Name', 'Task', 'Base', 'Versions', 'Latest', 'Aliases', 'Owner'];
  return h(
    'section',
    { testid: 'adapters-view' },
    h('h1', {}, 'Adapters'),
    form,
    err,
    count,
    h(
      'table',
      { testid: 'adapter-list' },
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          columns.map((t) => h('th', { scope: 'col' }, t)),
        ),
      ),
      tbody,
    ),
    more,
  );
}

function row(a: Json): HTMLTableRowElement {
  const latest = a.latest_version;
  return h(
    'tr',
    { testid: `adapter-row-${a.name}` },
    h(
      'td',
      {},
      h('a', { href: `#/adapters/${enc(a.name)}` }, a.name),
      a.description ? h('div', { class: 'muted' }, a.description) : null,
    ),
    h('td', {}, a.task || '–'),
    h('td', {}, latest ? latest.base : '–'),
    h('td', { class: 'num' }, String(a.versions)),
    h('td', {}, latest ? [`v${latest.version} `, badge(latest.kind, 'kind'), ' ', badge(latest.status)] : '–'),
    h(
      'td',
      {},
      Object.entries(a.aliases).map(([name, v]) => h('span', { class: 'alias' }, `${name} → v${v}`)),
    ),
    h('td', {}, a.owner, a.visibility === 'public' ? ' (public)' : ''),
  );
}

export function adapterView(ctx: ViewContext, name: string): HTMLElement {
  const err = errorBox();
  const status = statusLine('adapter-status');
  const header = h('div');
  const versions = h('div', { testid: 'versions' });
  const detail = h('div', { testid: 'version-detail', 'aria-live': 'polite' });
  const aliases = h('div', { testid: 'aliases' });
  const path = `/v1/adapters/${enc(name)}`;
  let adapter: Json = null;
  let selected: number | null = null;

  const refresh = async () => {
    adapter = await api('GET', path);
    const aliasList: Json[] = (await api('GET', `${path}/aliases`)).data;
    const histories = await Promise.all(
      aliasList.map((a) => api('GET', `${path}/aliases/${enc(a.alias)}/history?limit=20`)),
    );
    renderHeader();
    renderVersions();
    renderAliases(
      aliasList,
      histories.map((hh) => hh.data),
    );
    if (selected === null && adapter.latest_version) await select(adapter.latest_version.version);
  };

  const select = async (version: number) => {
    selected = version;
    const v = await api('GET', `${path}/versions/${version}`);
    renderDetail(v);
    for (const tr of versions.querySelectorAll<HTMLElement>('tr[data-version]')) {
      tr.classList.toggle('selected', tr.dataset.version === String(version));
    }
  };

  // After a change, reload everything the change may touch and say what happened.
  const change = (button: HTMLButtonElement, fn: () => Promise<string>) =>
    act(button, err, async () => {
      const message = await fn();
      await refresh();
      if (selected !== null) await select(selected);
      replace(status, message);
    });

  function renderHeader(): void {
    replace(
      header,
      h('h1', {}, adapter.name),
      adapter.description ? h('p', {}, adapter.description) : null,
      h(
        'p',
        { class: 'muted' },
        'Owner ',
        adapter.owner,
        ' · ',
        adapter.visibility,
        ' · task ',
        adapter.task || '–',
        ' · created ',
        when(adapter.created_at),
      ),
      h(
        'p',
        {},
        h('a', { href: `#/experiments/${enc(adapter.name)}`, testid: 'adapter-experiments-link' }, 'Experiments'),
        ' · ',
        h('a', { href: `#/playground?model=${enc(adapter.name)}` }, 'Try it in the playground'),
      ),
    );
  }

  function renderVersions(): void {
    const rows = adapter.version_list.map((v: Json) => {
      const ref = `${adapter.name}@${v.version}`;
      const setStatus = (to: string, button: HTMLButtonElement) =>
        change(button, async () => {
          if (to === 'yanked' && !confirm(`Yank ${ref}? Requests for it will be refused (410).`)) return 'Not yanked.';
          await api('PATCH', `${path}/versions/${v.version}`, { status: to });
          return `${ref} is now ${to}.`;
        });
      const button = (action: string, label: string, run: (b: HTMLButtonElement) => unknown, danger = false) =>
        h(
          'button',
          {
            type: 'button',
            class: danger ? 'danger' : null,
            testid: `version-${action}-${v.version}`,
            onclick: (e) => run(e.currentTarget),
          },
          label,
        );
      const actions = [button('show', 'Details', (b) => act(b, err, () => select(v.version)))];
      if (v.status !== 'active') actions.push(button('activate', 'Reactivate', (b) => setStatus('active', b)));
      if (v.status === 'active') actions.push(button('deprecate', 'Deprecate', (b) => setStatus('deprecated', b)));
      if (v.status !== 'yanked') actions.push(button('yank', 'Yank', (b) => setStatus('yanked', b), true));
      return h(
        'tr',
        { testid: `version-row-${v.version}`, 'data-version': v.version },
        h('th', { scope: 'row' }, `v${v.version}`),
        h('td', {}, badge(v.kind, 'kind')),
        h('td', { class: 'num', testid: 'version-params' }, num(v.params)),
        h('td', { class: 'num', testid: 'version-pct' }, pct(v.params_pct_of_base)),
        h('td', {}, h('code', { class: 'hash', testid: 'version-sha256' }, v.sha256)),
        h('td', { testid: 'version-status' }, badge(v.status)),
        h('td', {}, v.base),
        h('td', {}, when(v.created_at)),
        h('td', { class: 'actions' }, actions),
      );
    });
    replace(
      versions,
      h('h2', {}, 'Versions'),
      table(['Version', 'Kind', 'Parameters', '% of base', 'sha256', 'Status', 'Base', 'Published', 'Actions'], rows),
    );
  }

  function renderDetail(v: Json): void {
    const shape =
      v.kind === 'vlm'
        ? `residual adapter, bottleneck ${v.bottleneck}`
        : `LoRA, rank ${v.rank} on ${v.target_modules.join(', ')}`;
    const dl = h('dl', { class: 'facts' });
    const fact = (k: string, ...vals: Child[]) => dl.append(h('dt', {}, k), h('dd', {}, vals));
    fact('Kind', `${v.kind} (${shape})`);
    fact('Parameters', `${num(v.params)} = ${pct(v.params_pct_of_base)} of ${v.base.ref} (${num(v.base.params)})`);
    fact('sha256', h('code', { class: 'hash' }, v.sha256));
    fact('Size', `${bytes(v.bytes)} in ${plural(v.files.length, 'file')}`);
    fact('Base', `${v.base.ref} · ${v.base.architecture} · `, h('code', { class: 'hash' }, v.base.sha256));
    if (v.task_tokens.length)
      fact(
        'Task tokens',
        v.task_tokens.map((t: string) => h('code', {}, t)),
      );
    if (v.tags.length) fact('Tags', v.tags.join(', '));
    fact('Published', when(v.created_at), v.created_by ? ` by ${v.created_by}` : '');
    if (v.lineage.dataset) fact('Dataset', v.lineage.dataset);
    if (v.lineage.license) fact('License', v.lineage.license);
    if (v.lineage.training_notes) fact('Training notes', v.lineage.training_notes);
    if (v.metrics) fact('Metrics', h('code', {}, JSON.stringify(v.metrics)));
    const files = v.files.map((f: Json) =>
      h(
        'tr',
        {},
        h('td', {}, f.name),
        h('td', { class: 'num' }, bytes(f.bytes)),
        h('td', {}, h('code', { class: 'hash' }, f.sha256)),
      ),
    );
    replace(
      detail,
      h('h2', {}, v.ref, ' ', badge(v.status)),
      dl,
      h('h3', {}, 'Files'),
      table(['File', 'Size', 'sha256'], files),
      h('h3', {}, 'Model card'),
      h(
        'div',
        { class: 'card-body', testid: 'model-card' },
        v.card ? markdown(v.card) : h('p', { class: 'muted' }, 'No model card.'),
      ),
    );
  }

  function versionSelect(current: number | null | undefined, label: string): HTMLSelectElement {
    const choices = adapter.version_list.filter((v: Json) => v.status !== 'yanked');
    return h(
      'select',
      { 'aria-label': label },
      choices.map((v: Json) =>
        h(
          'option',
          { value: v.version, selected: v.version === current },
          `v${v.version}${v.status === 'deprecated' ? ' (deprecated)' : ''}`,
        ),
      ),
    );
  }

  function renderAliases(list: Json[], histories: Json[][]): void {
    const reason = h('input', { type: 'text', name: 'reason', maxlength: 1000, testid: 'alias-reason' });
    const why = () => (reason.value.trim() ? { reason: reason.value.trim() } : {});
    const items = list.map((a, i) => {
      const aliasPath = `${path}/aliases/${enc(a.alias)}`;
      const target = versionSelect(a.version, `Version for alias ${a.alias}`);
      target.setAttribute('data-testid', `alias-target-${a.alias}`);
      const moveTo = async () => {
        const to = Number(target.value);
        const r = await request('PUT', aliasPath, { version: to, ...why() });
        return r.data.changed
          ? `${a.alias} moved from v${r.data.previous_version} to v${r.data.version}.${warned(r.warning)}`
          : `${a.alias} already points to v${to}.`;
      };
      const rollBack = async () => {
        const r = await request('POST', `${aliasPath}/rollback`, why());
        return `${a.alias} rolled back from v${r.data.previous_version} to v${r.data.version}.${warned(r.warning)}`;
      };
      const move = h(
        'button',
        {
          type: 'button',
          testid: `alias-move-${a.alias}`,
          onclick: (e) => change(e.currentTarget, moveTo),
        },
        'Move',
      );
      const rollback = h(
        'button',
        {
          type: 'button',
          testid: `alias-rollback-${a.alias}`,
          onclick: (e) => change(e.currentTarget, rollBack),
        },
        'Roll back',
      );
      const moves = histories[i].map((m) =>
        h(
          'tr',
          { 'data-kind': m.kind },
          h('td', {}, when(m.moved_at)),
          h('td', { testid: 'history-kind' }, m.kind),
          h('td', { testid: 'history-from' }, m.from_version === null ? '–' : `v${m.from_version}`),
          h('td', { testid: 'history-to' }, `v${m.to_version}`),
          h('td', {}, m.moved_by ? `${m.moved_by.key_name} (${m.moved_by.tenant})` : '–'),
          h('td', {}, m.reason || ''),
        ),
      );
      return h(
        'article',
        { class: 'card', testid: `alias-${a.alias}` },
        h('h3', {}, a.alias, ' → ', h('span', { testid: `alias-version-${a.alias}` }, `v${a.version}`)),
        h('p', { class: 'muted' }, 'Updated ', when(a.updated_at)),
        h('div', { class: 'row' }, target, move, rollback),
        h('h4', {}, 'History'),
        table(['When', 'Change', 'From', 'To', 'By', 'Reason'], moves, { testid: `alias-history-${a.alias}` }),
      );
    });
    const newName = h('input', { type: 'text', name: 'alias', required: true, testid: 'alias-new-name' });
    const newVersion = versionSelect(adapter.latest_version && adapter.latest_version.version, 'Version');
    newVersion.id = 'alias-new-version';
    const setButton = h('button', { type: 'submit', testid: 'alias-set' }, 'Set alias');
    const form = h(
      'form',
      {
        class: 'row',
        onsubmit: (e) => {
          e.preventDefault();
          change(setButton, async () => {
            const body = { version: Number(newVersion.value), ...why() };
            const r = await request('PUT', `${path}/aliases/${enc(newName.value.trim())}`, body);
            return `${r.data.alias} now points to v${r.data.version}.${warned(r.warning)}`;
          });
        },
      },
      field('New alias', newName),
      field('Version', newVersion),
      setButton,
    );
    replace(
      aliases,
      h('h2', {}, 'Aliases'),
      field('Reason for the next alias change (optional)', reason),
      items.length ? items : h('p', {}, 'No aliases yet.'),
      h('h3', {}, 'Set an alias'),
      form,
    );
  }

  refresh().catch((e) => showError(err, e));
  return h('section', { testid: 'adapter-view' }, header, err, status, versions, detail, aliases);
}
