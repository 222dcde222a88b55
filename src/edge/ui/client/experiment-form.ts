/**
 * Browser module `/ui/assets/experiment-form.js`: the form that creates an experiment: arms and
 * weights, the feedback metric (binary, scale or continuous with its bounds), guardrails with their
 * tolerated regressions, and auto-promotion.
 */
import { api, type Json } from './api.ts';
import { act, enc, errorBox, field, h } from './dom.ts';

/** The guardrails the API takes; the form asks for tolerances in points or percent, the API takes fractions. */
const GUARDRAILS = [
  { key: 'error_rate', label: 'Error rate', unit: 'points', initial: 1, hint: 'absolute: 1 = one point more' },
  { key: 'p95_latency', label: 'p95 latency', unit: '%', initial: 20, hint: 'relative to control' },
  { key: 'tokens_per_request', label: 'Tokens per request', unit: '%', initial: 20, hint: 'relative to control' },
] as const;

export function createForm(adapter: Json): HTMLFormElement {
  const err = errorBox();
  const versions: Json[] = adapter.version_list.filter((v: Json) => v.status !== 'yanked');
  const choices = [
    ...versions.map((v) => ({
      value: `v:${v.version}`,
      label: `v${v.version}${v.status === 'deprecated' ? ' (deprecated)' : ''}`,
    })),
    ...Object.entries(adapter.aliases).map(([alias, v]) => ({
      value: `a:${alias}`,
      label: `alias ${alias} (now v${v}; fixed when the experiment starts)`,
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
  const metric = metricFields();
  const guardrails = guardrailFields();
  const autoPromote = h('input', { type: 'checkbox', id: 'exp-auto-promote-box', testid: 'exp-auto-promote' });
  const start = h('input', {
    type: 'checkbox',
    name: 'start',
    id: 'exp-start-box',
    checked: true,
    testid: 'exp-start-now',
  });
  const submit = h('button', { type: 'submit', testid: 'exp-create' }, 'Create experiment');
  // An arm as the API takes it: "v:2" serves version 2, "a:production" whatever that alias points to at the start.
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
            metrics: [metric.value()],
            guardrails: guardrails.value(),
            auto_promote: autoPromote.checked,
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
    metric.element,
    guardrails.element,
    h(
      'div',
      { class: 'field inline' },
      autoPromote,
      h(
        'label',
        { for: 'exp-auto-promote-box' },
        'Auto-promote: move production to an arm the sequential test finds better, with no guardrail violated',
      ),
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

// The primary metric: what feedback scores (and application metric events) are checked against.
function metricFields(): { element: HTMLFieldSetElement; value: () => Json } {
  const name = h('input', {
    type: 'text',
    value: 'score',
    required: true,
    maxlength: 64,
    pattern: '[A-Za-z0-9_.\\-]{1,64}',
    testid: 'metric-name',
  });
  const kind = h(
    'select',
    { testid: 'metric-kind' },
    h('option', { value: 'binary', selected: true }, 'binary (0 or 1: the playground’s thumbs)'),
    h('option', { value: 'scale' }, 'scale (whole numbers from min to max, e.g. 1-5)'),
    h('option', { value: 'continuous' }, 'continuous (any number from min to max)'),
  );
  const bound = (value: number, testid: string) =>
    h('input', { type: 'number', step: 'any', value, required: true, testid });
  const min = bound(1, 'metric-min');
  const max = bound(5, 'metric-max');
  const bounds = h('div', { class: 'row', hidden: true }, field('Min', min), field('Max', max));
  kind.addEventListener('change', () => {
    bounds.hidden = kind.value === 'binary';
    for (const input of [min, max]) input.disabled = bounds.hidden;
  });
  for (const input of [min, max]) input.disabled = true;
  const element = h(
    'fieldset',
    { class: 'arm', testid: 'exp-metric-fields' },
    h('legend', {}, 'Feedback metric (higher is better)'),
    field('Metric name', name),
    field('Kind', kind),
    bounds,
  );
  const value = () =>
    kind.value === 'binary'
      ? { name: name.value.trim(), kind: 'binary' }
      : { name: name.value.trim(), kind: kind.value, min: Number(min.value), max: Number(max.value) };
  return { element, value };
}

// Guardrails: each, when ticked, stops the experiment once an arm is surely worse than control by more than this.
function guardrailFields(): { element: HTMLFieldSetElement; value: () => Record<string, number> } {
  const rows = GUARDRAILS.map((g) => {
    const on = h('input', { type: 'checkbox', id: `guardrail-${g.key}-box`, testid: `guardrail-${g.key}-on` });
    const tolerance = h('input', {
      type: 'number',
      min: 0,
      step: 'any',
      value: g.initial,
      disabled: true,
      'aria-label': `${g.label}: tolerated regression in ${g.unit}`,
      testid: `guardrail-${g.key}-tolerance`,
    });
    on.addEventListener('change', () => {
      tolerance.disabled = !on.checked;
    });
    const element = h(
      'div',
      { class: 'field inline' },
      on,
      h('label', { for: on.id }, g.label),
      ' tolerated regression ',
      tolerance,
      ` ${g.unit}`,
      h('small', {}, ` (${g.hint})`),
    );
    return { key: g.key, on, tolerance, element };
  });
  const element = h(
    'fieldset',
    { class: 'arm guardrails', testid: 'exp-guardrail-fields' },
    h('legend', {}, 'Guardrails (stop the experiment and serve control when an arm is surely worse)'),
    rows.map((r) => r.element),
  );
  const value = () =>
    Object.fromEntries(rows.filter((r) => r.on.checked).map((r) => [r.key, Number(r.tolerance.value) / 100]));
  return { element, value };
}
