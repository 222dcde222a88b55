/**
 * Browser module `/ui/assets/experiments.js`: an adapter's experiments with the create form, and one
 * experiment's controls (start, stop, kill switch, weights, promote an arm) and live results
 * (refreshed every few seconds; rendered by experiment-results.ts).
 */
import { api, query, type Json } from './api.ts';
import {
  act,
  badge,
  clearError,
  enc,
  errorBox,
  field,
  h,
  replace,
  showError,
  statusLine,
  table,
  when,
  type ButtonEvent,
  type ViewContext,
} from './dom.ts';
import { createForm } from './experiment-form.ts';
import { armTarget, renderResults } from './experiment-results.ts';

// How often live results refresh.
const REFRESH_MS = 2500;

export function experimentsView(ctx: ViewContext, adapterName: string): HTMLElement {
  const err = errorBox();
  const body = h('div', {}, h('p', {}, 'Loading…'));
  const picker = h('select', {
    testid: 'exp-adapter',
    onchange: () => {
      location.hash = `#/experiments/${enc(picker.value)}`;
    },
  });
  load().catch((e) => {
    replace(body);
    showError(err, e);
  });
  return h('section', { testid: 'experiments-view' }, h('h1', {}, 'Experiments'), field('Adapter', picker), err, body);

  async function load(): Promise<void> {
    const adapters: Json[] = (await api('GET', '/v1/adapters?limit=200')).data;
    if (!adapters.length) {
      replace(body, h('p', {}, 'No adapters yet: publish one first.'));
      return;
    }
    const name = adapterName || adapters[0].name;
    replace(
      picker,
      adapters.map((a) => h('option', { value: a.name, selected: a.name === name }, a.name)),
    );
    const [adapter, list] = await Promise.all([
      api('GET', `/v1/adapters/${enc(name)}`),
      api('GET', `/v1/experiments${query({ adapter: name })}`),
    ]);
    const rows = list.data.map((e: Json) =>
      h(
        'tr',
        { testid: `exp-row-${e.id}` },
        h(
          'td',
          {},
          h('a', { href: `#/experiment/${enc(e.id)}` }, e.name),
          h('div', { class: 'muted' }, h('code', {}, e.id)),
        ),
        h(
          'td',
          {},
          badge(e.status),
          e.killed ? [' ', badge('killed')] : null,
          e.stop_reason ? h('div', { class: 'muted', testid: 'exp-row-stop-reason' }, e.stop_reason) : null,
        ),
        h('td', {}, e.arms.map((a: Json) => `${a.name}: ${armTarget(a)} ×${a.weight}`).join(' · ')),
        h('td', {}, when(e.created_at)),
      ),
    );
    replace(
      body,
      h('h2', {}, 'Experiments on ', h('a', { href: `#/adapters/${enc(name)}` }, name)),
      list.data.length
        ? table(['Name', 'Status', 'Arms', 'Created'], rows, { testid: 'exp-list' })
        : h('p', {}, `No experiments on ${name} yet.`),
      createForm(adapter),
    );
  }
}

export function experimentView(ctx: ViewContext, id: string): HTMLElement {
  const err = errorBox();
  const status = statusLine('exp-action-status');
  const header = h('div');
  const controls = h('div', { class: 'row' });
  const weights = h('div');
  const results = h('div', { testid: 'results' });
  const updated = h('span', { testid: 'results-updated', class: 'muted' }, 'loading…');
  const resultsErr = errorBox();
  const path = `/v1/experiments/${enc(id)}`;
  let timer: ReturnType<typeof setTimeout> | undefined;
  // The experiment as last shown, and whether this key may change it (scope publish or admin).
  let shown: Json = null;
  let canWrite = false;

  const render = (e: Json) => {
    shown = e;
    replace(
      header,
      h('h1', {}, e.name),
      h(
        'p',
        {},
        'Adapter ',
        h('a', { href: `#/adapters/${enc(e.adapter)}` }, e.adapter),
        ' · ',
        h('code', { testid: 'exp-id' }, e.id),
        ' · ',
        h('span', { testid: 'exp-status' }, badge(e.status)),
        e.killed ? [' ', h('span', { testid: 'exp-killed' }, badge('killed'))] : null,
        ' · ',
        h('a', { href: `#/playground?model=${enc(e.adapter)}` }, 'Send it traffic in the playground'),
      ),
    );
    const patch = (body: object, message: string) => (ev: ButtonEvent) =>
      act(ev.currentTarget, err, async () => {
        render(await api('PATCH', path, body));
        replace(status, message);
        poll();
      });
    const stop = (ev: ButtonEvent) => {
      if (!confirm('Stop this experiment? A stopped experiment cannot be restarted.')) return;
      patch({ status: 'stopped' }, 'Stopped.')(ev);
    };
    const kill = patch(
      { killed: !e.killed },
      e.killed ? 'Kill switch off: arms are assigned again.' : 'Kill switch on: every unit gets the control arm.',
    );
    const start = patch({ status: 'running' }, 'Started.');
    // A stopped experiment is over: nothing left to start, stop, ramp or kill.
    const open = e.status !== 'stopped';
    replace(
      controls,
      e.status === 'draft' ? h('button', { type: 'button', testid: 'exp-start', onclick: start }, 'Start') : null,
      open && h('button', { type: 'button', testid: 'exp-stop', onclick: stop }, 'Stop'),
      open &&
        h(
          'button',
          {
            type: 'button',
            class: e.killed ? 'danger' : '',
            'aria-pressed': String(e.killed),
            testid: 'exp-kill',
            onclick: kill,
          },
          e.killed ? 'Kill switch is ON: turn off' : 'Kill switch: send everyone to control',
        ),
    );
    const inputs: HTMLInputElement[] = e.arms.map((a: Json) =>
      h('input', {
        type: 'number',
        min: 0,
        step: 'any',
        value: a.weight,
        'aria-label': `Weight of arm ${a.name}`,
        testid: `weight-${a.name}`,
      }),
    );
    const save = h('button', { type: 'submit' }, 'Update weights');
    const onsubmit = (ev: SubmitEvent) => {
      ev.preventDefault();
      patch({ weights: inputs.map((i) => Number(i.value)) }, 'Weights updated.')({ currentTarget: save });
    };
    replace(
      weights,
      open &&
        h(
          'form',
          { class: 'row', onsubmit },
          h('span', {}, 'Weights:'),
          e.arms.map((a: Json, i: number) =>
            h('label', { class: 'inline' }, `${a.name} (${armTarget(a)}) `, inputs[i]),
          ),
          save,
        ),
    );
  };

  // Live results: one request at a time, only while this view is open and the tab is visible.
  let inflight = false;
  async function poll(): Promise<void> {
    clearTimeout(timer);
    if (ctx.signal.aborted || inflight) return;
    inflight = true;
    try {
      if (!document.hidden) {
        const r = await api('GET', `${path}/results`);
        if (ctx.signal.aborted) return;
        // The results may have acted (a guardrail stop, an auto-promotion): show the experiment as it is now.
        if (shown && (r.experiment.status !== shown.status || r.experiment.killed !== shown.killed)) {
          render(await api('GET', path));
        }
        renderResults(results, r, {
          promoteButton: (arm, recommended) => promoteButton(r, arm, recommended),
        });
        replace(updated, `Live · updated ${new Date(r.generated_at).toLocaleTimeString('en-GB')}`);
        clearError(resultsErr);
      }
    } catch (e) {
      showError(resultsErr, e);
    } finally {
      inflight = false;
    }
    if (!ctx.signal.aborted) timer = setTimeout(poll, REFRESH_MS);
  }
  ctx.signal.addEventListener('abort', () => clearTimeout(timer));

  // Any treatment arm of a running experiment can be promoted by a writer; the one the results
  // recommend (the sequential test finds it better, no guardrail violated) is highlighted.
  function promoteButton(r: Json, arm: string, recommended: boolean): HTMLElement | null {
    if (!canWrite || r.experiment.status !== 'running') return null;
    const target = r.arms.find((a: Json) => a.arm === arm);
    const onclick = (ev: ButtonEvent) => {
      const question =
        `Promote arm "${arm}" (${armTarget(target)})? The adapter's production alias moves to ` +
        `v${target.version} and the experiment stops.` +
        (recommended ? '' : ' The results do not show this arm better than control.');
      if (!confirm(question)) return;
      act(ev.currentTarget, err, async () => {
        const p = await api('POST', `${path}/promote`, { arm });
        render(p.experiment);
        const from = p.previous_version === null ? '' : ` from v${p.previous_version}`;
        replace(status, `Promoted ${arm}: production moved${from} to v${p.version}; the experiment is stopped.`);
        poll();
      });
    };
    return h(
      'button',
      { type: 'button', class: recommended ? 'primary' : '', testid: `promote-${arm}`, onclick },
      `Promote ${arm}`,
    );
  }

  Promise.all([api('GET', path), api('GET', '/v1/whoami')])
    .then(([e, me]) => {
      canWrite = me.scopes.includes('publish') || me.scopes.includes('admin');
      render(e);
      poll();
    })
    .catch((e) => showError(err, e));
  return h(
    'section',
    { testid: 'experiment-view' },
    header,
    err,
    status,
    controls,
    weights,
    h('h2', {}, 'Results ', updated),
    h('button', { type: 'button', testid: 'results-refresh', onclick: () => poll() }, 'Refresh now'),
    resultsErr,
    results,
  );
}
