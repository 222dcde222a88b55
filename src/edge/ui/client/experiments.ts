/**
 * Browser module `/ui/assets/experiments.js`: an adapter's experiments, the create form (arms and
 * weights), and one experiment's controls and live results (refreshed every few seconds).
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
  interval,
  ms,
  num,
  percent,
  replace,
  showError,
  sig,
  statusLine,
  table,
  when,
  type ButtonEvent,
  type Child,
  type ViewContext,
} from './dom.ts';
import { intervalChart, latencyChart } from './charts.ts';

// How often live results refresh.
const REFRESH_MS = 2500;

const pValue = (p: number) => (p < 1e-6 ? '< 0.000001' : `= ${sig(p, 2)}`);
const armTarget = (a: Json) => (a.version !== null ? `v${a.version}` : `alias ${a.alias}`);

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
        h('td', {}, badge(e.status), e.killed ? [' ', badge('killed')] : null),
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

function createForm(adapter: Json): HTMLFormElement {
  const err = errorBox();
  const versions: Json[] = adapter.version_list.filter((v: Json) => v.status !== 'yanked');
  const choices = [
    ...versions.map((v) => ({
      value: `v:${v.version}`,
      label: `v${v.version}${v.status === 'deprecated' ? ' (deprecated)' : ''}`,
    })),
    ...Object.entries(adapter.aliases).map(([alias, v]) => ({
      value: `a:${alias}`,
      label: `alias ${alias} (now v${v})`,
    })),
  ];
  const latest = versions[0] ? versions[0].version : null;
  const production = adapter.aliases.production;
  // The control: production's version, unless that is the latest (the candidate); else the one before the latest.
  const control =
    production !== undefined && production !== latest ? production : versions[1] ? versions[1].version : latest;
  const arms = h('div', { class: 'arms' });
  let n = 0;

  const addArm = (name: string, version: number | null, weight: number) => {
    const i = n++;
    const target = h(
      'select',
      { testid: `arm-target-${i}` },
      choices.map((c) => h('option', { value: c.value, selected: c.value === `v:${version}` }, c.label)),
    );
    const row = h(
      'fieldset',
      { class: 'arm', testid: `arm-${i}` },
      h('legend', {}, `Arm ${i + 1}`),
      field(
        'Arm name',
        h('input', {
          type: 'text',
          name: 'arm-name',
          value: name,
          required: true,
          maxlength: 64,
          testid: `arm-name-${i}`,
        }),
      ),
      field('Serves', target),
      field(
        'Weight',
        h('input', {
          type: 'number',
          name: 'arm-weight',
          value: weight,
          min: 0,
          step: 'any',
          required: true,
          testid: `arm-weight-${i}`,
        }),
      ),
      h(
        'button',
        {
          type: 'button',
          class: 'link',
          onclick: () => {
            if (arms.children.length > 1) row.remove();
          },
        },
        `Remove arm ${i + 1}`,
      ),
    );
    arms.append(row);
  };
  addArm('control', control, 50);
  if (latest !== null && latest !== control) addArm('candidate', latest, 50);

  const name = h('input', {
    type: 'text',
    name: 'name',
    required: true,
    maxlength: 200,
    value: `${adapter.name} experiment`,
    testid: 'exp-name',
  });
  const start = h('input', {
    type: 'checkbox',
    name: 'start',
    id: 'exp-start-box',
    checked: true,
    testid: 'exp-start-now',
  });
  const submit = h('button', { type: 'submit', testid: 'exp-create' }, 'Create experiment');
  // An arm as the API takes it: "v:2" serves version 2, "a:production" whatever that alias points to.
  const armOf = (f: HTMLFieldSetElement) => {
    const [kind, value] = f.querySelector('select')!.value.split(/:(.*)/s);
    const arm = {
      name: f.querySelector<HTMLInputElement>('[name=arm-name]')!.value.trim(),
      weight: Number(f.querySelector<HTMLInputElement>('[name=arm-weight]')!.value),
    };
    return kind === 'v' ? { ...arm, version: Number(value) } : { ...arm, alias: value };
  };
  return h(
    'form',
    {
      class: 'card',
      testid: 'exp-form',
      onsubmit: (e) => {
        e.preventDefault();
        act(submit, err, async () => {
          const body = {
            name: name.value.trim(),
            adapter: adapter.name,
            status: start.checked ? 'running' : 'draft',
            arms: [...arms.querySelectorAll('fieldset')].map(armOf),
          };
          const created = await api('POST', '/v1/experiments', body);
          location.hash = `#/experiment/${enc(created.id)}`;
        });
      },
    },
    h('h2', {}, 'New experiment'),
    h(
      'p',
      { class: 'muted' },
      'The first arm is the control. ' +
        "Units (the request's user, or x-versa-unit) stick to the arm they are first assigned.",
    ),
    field('Name', name),
    arms,
    h(
      'button',
      { type: 'button', testid: 'exp-add-arm', onclick: () => addArm(`arm ${n + 1}`, latest, 50) },
      'Add arm',
    ),
    h(
      'div',
      { class: 'field inline' },
      start,
      h('label', { for: 'exp-start-box' }, 'Start it now (at most one running experiment per adapter)'),
    ),
    err,
    submit,
  );
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

  const render = (e: Json) => {
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
    replace(
      controls,
      e.status === 'draft' ? h('button', { type: 'button', testid: 'exp-start', onclick: start }, 'Start') : null,
      e.status !== 'stopped' ? h('button', { type: 'button', testid: 'exp-stop', onclick: stop }, 'Stop') : null,
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
      h(
        'form',
        { class: 'row', onsubmit },
        h('span', {}, 'Weights:'),
        e.arms.map((a: Json, i: number) => h('label', { class: 'inline' }, `${a.name} (${armTarget(a)}) `, inputs[i])),
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
        renderResults(results, r);
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

  api('GET', path)
    .then((e) => {
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

// The chi-square check of units per arm against the weights: a mismatch means broken assignment or logging.
function srmCheck(r: Json, totalWeight: number): HTMLElement {
  const arms: Json[] = r.arms;
  if (!r.srm) {
    return h('p', { class: 'muted', testid: 'srm-status' }, 'Sample-ratio check: needs units in at least two arms.');
  }
  if (!r.srm.mismatch) {
    return h('p', { class: 'muted', testid: 'srm-status' }, `Sample-ratio check passed (p ${pValue(r.srm.p_value)}).`);
  }
  return h(
    'div',
    { class: 'warning', role: 'alert', testid: 'srm-warning' },
    h('strong', {}, 'Sample ratio mismatch. '),
    'Units per arm (',
    arms.map((a) => `${a.arm} ${a.units}`).join(', '),
    ') do not fit the weights (',
    arms.map((a) => `${a.arm} ${percent(a.weight / totalWeight, 0)}`).join(', '),
    '): χ² = ',
    sig(r.srm.chi2),
    ', p ',
    pValue(r.srm.p_value),
    ' (threshold ',
    String(r.srm.alpha),
    '). Assignment or logging is broken; do not trust these results until that is explained.',
  );
}

function renderResults(root: HTMLElement, r: Json): void {
  const arms: Json[] = r.arms;
  const totalUnits = arms.reduce((sum, a) => sum + a.units, 0);
  const totalWeight = arms.reduce((sum, a) => sum + a.weight, 0) || 1;
  const cell = (a: Json, key: string, ...content: Child[]) =>
    h('td', { class: 'num', testid: `arm-${a.arm}-${key}` }, content);
  const diff = (d: Json, unit = '') => (d.diff === null ? '–' : sig(d.diff) + unit);
  const rows = arms.map((a) =>
    h(
      'tr',
      { testid: `arm-row-${a.arm}` },
      h(
        'th',
        { scope: 'row' },
        a.arm,
        h('div', { class: 'muted' }, armTarget(a) + (a.arm === r.control ? ' · control' : '')),
      ),
      cell(
        a,
        'weight',
        percent(a.weight / totalWeight, 0),
        h('div', { class: 'muted' }, `seen ${totalUnits ? percent(a.units / totalUnits, 0) : '–'}`),
      ),
      cell(a, 'units', num(a.units)),
      cell(a, 'requests', num(a.requests)),
      cell(a, 'tokens', `${num(a.tokens.prompt)} / ${num(a.tokens.completion)}`),
      cell(a, 'latency', `${ms(a.latency_ms.mean)} / ${ms(a.latency_ms.p50)} / ${ms(a.latency_ms.p95)}`),
      cell(a, 'ttft', ms(a.ttft_ms.p50)),
      cell(a, 'errors', a.error_rate === null ? '–' : percent(a.error_rate)),
      cell(
        a,
        'feedback',
        a.feedback.mean === null ? '–' : sig(a.feedback.mean),
        h('div', { class: 'muted' }, `n = ${a.feedback.n}, ${interval(a.feedback.ci95)}`),
      ),
      cell(
        a,
        'vs-control',
        a.vs_control
          ? [
              h('div', {}, `feedback ${diff(a.vs_control.feedback)} ${interval(a.vs_control.feedback.ci95)}`),
              h('div', {}, `latency ${diff(a.vs_control.latency_ms, ' ms')} ${interval(a.vs_control.latency_ms.ci95)}`),
            ]
          : '–',
      ),
    ),
  );
  const others = arms.filter((a) => a.vs_control);
  const headers = [
    'Arm',
    'Weight',
    'Units',
    'Requests',
    'Tokens (prompt / completion)',
    'Latency (mean / p50 / p95)',
    'Time to first token (p50)',
    'Error rate',
    'Feedback (mean, 95 % CI)',
    'Difference vs control (95 % CI)',
  ];
  replace(
    root,
    srmCheck(r, totalWeight),
    table(headers, rows, { testid: 'results-table' }),
    h(
      'div',
      { class: 'charts' },
      latencyChart({
        title: 'Latency per arm (bar: median, whisker: to p95, dot: mean)',
        testid: 'chart-latency',
        rows: arms.map((a) => ({ label: a.arm, ...a.latency_ms })),
      }),
      intervalChart({
        title: 'Mean feedback per arm with 95 % confidence interval',
        testid: 'chart-feedback',
        rows: arms.map((a) => ({
          label: a.arm,
          value: a.feedback.mean,
          ci: a.feedback.ci95,
          note: `n=${a.feedback.n}`,
        })),
      }),
      others.length
        ? intervalChart({
            title: 'Feedback difference vs control (arm − control, 95 % CI)',
            testid: 'chart-feedback-diff',
            zeroLine: true,
            rows: others.map((a) => ({
              label: a.arm,
              value: a.vs_control.feedback.diff,
              ci: a.vs_control.feedback.ci95,
            })),
          })
        : null,
      others.length
        ? intervalChart({
            title: 'Latency difference vs control (arm − control, 95 % CI)',
            testid: 'chart-latency-diff',
            unit: 'ms',
            zeroLine: true,
            rows: others.map((a) => ({
              label: a.arm,
              value: a.vs_control.latency_ms.diff,
              ci: a.vs_control.latency_ms.ci95,
            })),
          })
        : null,
    ),
  );
}
