/**
 * Browser module `/ui/assets/experiment-results.js`: one experiment's results as
 * GET /v1/experiments/{id}/results gives them: the sequential verdict next to the fixed-horizon
 * interval, per-unit figures per arm, guardrail checks, the sample-ratio check, charts and history.
 */
import type { Json } from './api.ts';
import { badge, h, interval, ms, num, percent, replace, sig, table, when, type Child } from './dom.ts';
import { intervalChart, latencyChart } from './charts.ts';

const pValue = (p: number | null | undefined) =>
  p === null || p === undefined ? '–' : p < 1e-6 ? '< 0.000001' : `= ${sig(p, 2)}`;

/** What an arm serves: "v3", or "alias production → v3" once started (an alias arm's version is fixed then). */
export function armTarget(a: Json): string {
  if (a.alias === null || a.alias === undefined) return `v${a.version}`;
  return a.resolved_version === null || a.resolved_version === undefined
    ? `alias ${a.alias} (version fixed when started)`
    : `alias ${a.alias} → v${a.resolved_version}`;
}

/** A declared metric in words: "score: binary (0/1)", "stars: scale 1–5", "revenue: continuous in [0, 100]". */
function metricText(m: Json): string {
  if (m.kind === 'binary') return `${m.name}: binary (0/1)`;
  if (m.kind === 'scale') return `${m.name}: scale ${m.min}–${m.max} (whole numbers)`;
  return `${m.name}: continuous in [${m.min}, ${m.max}]`;
}

/** What the results view offers besides showing: a Promote button for an arm (null where none fits). */
interface ResultsActions {
  promoteButton(arm: string, recommended: boolean): HTMLElement | null;
}

const VERDICTS: Record<string, string> = {
  better: 'better than control',
  worse: 'worse than control',
  inconclusive: 'inconclusive',
  too_few_units: 'too few units yet',
};

const armsOf = (r: Json): Json[] => r.arms;

export function renderResults(root: HTMLElement, r: Json, actions: ResultsActions): void {
  const totalWeight = armsOf(r).reduce((sum, a) => sum + a.weight, 0) || 1;
  replace(
    root,
    summary(r),
    srmCheck(r, totalWeight),
    verdictSection(r, actions),
    h('h3', {}, 'Per arm (unit-level)'),
    h('div', { class: 'scroll' }, unitsTable(r, totalWeight)),
    guardrailSection(r),
    charts(r),
    historySection(r),
  );
}

function summary(r: Json): HTMLElement {
  const e = r.experiment;
  const metrics: Json[] = e.metrics;
  return h(
    'dl',
    { class: 'facts', testid: 'exp-summary' },
    h('dt', {}, 'Primary metric'),
    h('dd', { testid: 'exp-metric' }, metricText(metrics[0])),
    metrics.length > 1
      ? [h('dt', {}, 'Other metrics'), h('dd', {}, metrics.slice(1).map(metricText).join('; '))]
      : null,
    h('dt', {}, 'Arms'),
    h(
      'dd',
      { testid: 'exp-arm-versions' },
      armsOf(r).map((a, i) => [
        i ? ' · ' : '',
        h('span', { testid: `arm-${a.arm}-version` }, `${a.arm}: ${armTarget(a)}`),
      ]),
    ),
    h('dt', {}, 'Auto-promote'),
    h('dd', { testid: 'exp-auto-promote' }, e.auto_promote ? 'on' : 'off'),
    // A guardrail halts a running experiment (kill switch on) and gives the reason; a stop or promotion ends it.
    e.stop_reason
      ? [
          h('dt', {}, e.status === 'stopped' ? 'Stopped' : 'Halted'),
          h('dd', { testid: 'exp-stop-reason' }, e.stop_reason),
        ]
      : null,
    h('dt', {}, 'Analysis'),
    h(
      'dd',
      { class: 'muted' },
      `per ${r.analysis.unit}; ${r.analysis.variance}; verdicts from the ${r.analysis.sequential}, ` +
        `once both arms have ${r.analysis.min_units} units`,
    ),
  );
}

// The chi-square check of units per arm against the weights: a mismatch means broken assignment or logging.
function srmCheck(r: Json, totalWeight: number): HTMLElement {
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
    armsOf(r)
      .map((a) => `${a.arm} ${a.units}`)
      .join(', '),
    ') do not fit the weights (',
    armsOf(r)
      .map((a) => `${a.arm} ${percent(a.weight / totalWeight, 0)}`)
      .join(', '),
    '): χ² = ',
    sig(r.srm.chi2),
    ', p ',
    pValue(r.srm.p_value),
    ' (threshold ',
    String(r.srm.alpha),
    '). Assignment or logging is broken; do not trust these results until that is explained.',
  );
}

const withP = (ci: readonly number[] | null, p: number | null) =>
  ci ? `${interval(ci)}, p ${pValue(p)}` : 'no interval yet';

// Per treatment arm: the verdict (always-valid test), its interval and p-value, the fixed-horizon ones beside it.
function verdictSection(r: Json, actions: ResultsActions): HTMLElement {
  const verdicts: Json[] = r.verdict.arms;
  const rows = verdicts.map((v) => {
    const a = armsOf(r).find((x) => x.arm === v.arm)!;
    const d = a.vs_control ? a.vs_control.feedback : null;
    // The interval the verdict used (its alpha is split over the treatment arms), else the plain 95 % one.
    const sequence = v.cs ?? (d && d.cs95);
    const recommended = !!r.promotable && r.promotable.arm === v.arm;
    return h(
      'tr',
      { testid: `verdict-${v.arm}` },
      h('th', { scope: 'row' }, v.arm, h('div', { class: 'muted' }, armTarget(a))),
      h('td', { testid: `verdict-${v.arm}-verdict` }, badge(VERDICTS[v.verdict] ?? v.verdict, `verdict-${v.verdict}`)),
      h('td', { class: 'num', testid: `verdict-${v.arm}-diff` }, d ? sig(d.diff) : '–'),
      h('td', { class: 'num', testid: `verdict-${v.arm}-sequential` }, withP(sequence, d && d.p_value)),
      h('td', { class: 'num', testid: `verdict-${v.arm}-fixed` }, withP(d && d.ci95, d && d.p_value_fixed)),
      h(
        'td',
        {},
        recommended ? h('div', { testid: `promotable-${v.arm}` }, badge('promotable', 'running'), ' ') : null,
        actions.promoteButton(v.arm, recommended),
      ),
    );
  });
  return h(
    'section',
    { testid: 'verdict' },
    h('h3', {}, `Verdict on ${r.verdict.metric} (sequential test, alpha ${sig(r.verdict.alpha, 2)})`),
    r.promotable ? h('p', { class: 'status', testid: 'promotable' }, `Promotable: ${r.promotable.reason}.`) : null,
    verdicts.length
      ? table(
          [
            'Arm',
            'Verdict',
            'Difference vs control',
            'Always-valid 95 % interval, p (safe to peek)',
            'Fixed-horizon 95 % CI, p (valid at a planned size only)',
            'Promote',
          ],
          rows,
          { testid: 'verdict-table' },
        )
      : h('p', { class: 'muted' }, 'Only one arm: nothing to compare.'),
    h(
      'p',
      { class: 'muted' },
      'The verdict uses the always-valid interval only: it stays correct however often this page refreshes. ' +
        'The fixed-horizon interval is narrower but looking at it repeatedly inflates false positives.',
    ),
  );
}

function unitsTable(r: Json, totalWeight: number): HTMLTableElement {
  const totalUnits = armsOf(r).reduce((sum, a) => sum + a.units, 0);
  const cell = (a: Json, key: string, ...content: Child[]) =>
    h('td', { class: 'num', testid: `arm-${a.arm}-${key}` }, content);
  const withCi = (mean: Child, ci: readonly number[] | null, fmt = sig) => [
    mean,
    h('div', { class: 'muted' }, interval(ci, fmt)),
  ];
  const diff = (d: Json, unit = '') => (d.diff === null ? '–' : sig(d.diff) + unit);
  const rows = armsOf(r).map((a) =>
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
      cell(a, 'per-request-units', num(a.per_request_units)),
      cell(a, 'requests', num(a.requests)),
      cell(a, 'requests-per-unit', withCi(sig(a.requests_per_unit.mean), a.requests_per_unit.ci95)),
      cell(a, 'tokens', `${num(a.tokens.prompt)} / ${num(a.tokens.completion)}`),
      cell(a, 'tokens-per-request', withCi(sig(a.tokens_per_request.mean), a.tokens_per_request.ci95)),
      cell(a, 'latency', `${ms(a.latency_ms.mean)} / ${ms(a.latency_ms.p50)} / ${ms(a.latency_ms.p95)}`),
      cell(a, 'ttft', ms(a.ttft_ms.p50)),
      cell(
        a,
        'errors',
        withCi(percent(a.error_rate), a.error_rate_ci95, (x) => percent(x)),
      ),
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
              h(
                'div',
                {},
                `${r.primary_metric} ${diff(a.vs_control.feedback)} ${interval(a.vs_control.feedback.ci95)}`,
              ),
              h('div', {}, `latency ${diff(a.vs_control.latency_ms, ' ms')} ${interval(a.vs_control.latency_ms.ci95)}`),
            ]
          : '–',
      ),
    ),
  );
  const headers = [
    'Arm',
    'Weight',
    'Units',
    'Per-request units (no user)',
    'Requests',
    'Requests per unit (95 % CI)',
    'Tokens (prompt / completion)',
    'Tokens per request (95 % CI)',
    'Latency (mean / p50 / p95)',
    'Time to first token (p50)',
    'Error rate (95 % CI)',
    `${r.primary_metric} (mean, 95 % CI)`,
    'Difference vs control (fixed 95 % CI)',
  ];
  return table(headers, rows, { testid: 'results-table' });
}

function toleranceText(guardrail: string, tolerance: number): string {
  return guardrail === 'error_rate' ? `+${sig(tolerance * 100)} points` : `+${sig(tolerance * 100)} %`;
}

// What a check measured, in words (its detail keys depend on the guardrail).
function checkDetail(c: Json): string {
  const d = c.detail;
  if (c.guardrail === 'p95_latency') {
    return (
      `p95 control ${ms(d.control_p95_ms)}, arm ${ms(d.arm_p95_ms)}; ` +
      `share above the limit ${percent(d.share_above)}`
    );
  }
  const fmt = c.guardrail === 'error_rate' ? (x: number | null) => percent(x) : (x: number | null) => sig(x);
  const at = d.regression_at_least;
  return (
    `control ${fmt(d.control)}, arm ${fmt(d.arm)}; ` +
    `regression at least ${at === null ? '–' : c.guardrail === 'error_rate' ? percent(at) : sig(at)}`
  );
}

function guardrailSection(r: Json): HTMLElement {
  const checks: Json[] = r.guardrails.checks;
  const declared = Object.entries(r.experiment.guardrails as Record<string, number>);
  const tripped = (r.history as Json[]).find((x) => x.kind === 'guardrail');
  const halted = r.experiment.status === 'running' && r.experiment.killed;
  return h(
    'section',
    { testid: 'guardrails' },
    h('h3', {}, 'Guardrails ', h('span', { testid: 'guardrails-state' }, badge(r.guardrails.state))),
    tripped
      ? h(
          'div',
          { class: 'warning', role: 'alert', testid: 'guardrail-stop' },
          h('strong', {}, 'A guardrail tripped. '),
          tripped.detail.reason,
          ` (${when(tripped.at)}).`,
          halted
            ? ' The kill switch is on: every unit gets the control arm and nothing more is counted. ' +
                'Stop the experiment, or promote an arm if you still want to.'
            : null,
        )
      : null,
    !declared.length
      ? h('p', { class: 'muted', testid: 'guardrails-none' }, 'No guardrails declared.')
      : table(
          ['Arm', 'Guardrail', 'Tolerated regression', 'Measured', 'State'],
          checks.map((c) =>
            h(
              'tr',
              { testid: `guardrail-${c.arm}-${c.guardrail}` },
              h('td', {}, c.arm),
              h('td', {}, c.guardrail.replace(/_/g, ' ')),
              h('td', { testid: 'guardrail-tolerance' }, toleranceText(c.guardrail, c.tolerance)),
              h('td', { class: 'muted' }, checkDetail(c)),
              h('td', { testid: 'guardrail-state' }, badge(c.violated ? 'violated' : 'ok')),
            ),
          ),
          { testid: 'guardrails-table' },
        ),
  );
}

function charts(r: Json): HTMLElement {
  const others = armsOf(r).filter((a) => a.vs_control);
  return h(
    'div',
    { class: 'charts' },
    latencyChart({
      title: 'Latency per arm (bar: median, whisker: to p95, dot: mean)',
      testid: 'chart-latency',
      rows: armsOf(r).map((a) => ({ label: a.arm, ...a.latency_ms })),
    }),
    intervalChart({
      title: `Mean ${r.primary_metric} per arm (unit-level) with 95 % confidence interval`,
      testid: 'chart-feedback',
      rows: armsOf(r).map((a) => ({
        label: a.arm,
        value: a.feedback.mean,
        ci: a.feedback.ci95,
        note: `n=${a.feedback.n}`,
      })),
    }),
    others.length
      ? intervalChart({
          title: `${r.primary_metric} difference vs control (thin: fixed 95 % CI, wide: always-valid)`,
          testid: 'chart-feedback-diff',
          zeroLine: true,
          rows: others.map((a) => ({
            label: a.arm,
            value: a.vs_control.feedback.diff,
            ci: a.vs_control.feedback.ci95,
            sequence: a.vs_control.feedback.cs95,
          })),
        })
      : null,
    others.length
      ? intervalChart({
          title: 'Latency difference vs control (thin: fixed 95 % CI, wide: always-valid)',
          testid: 'chart-latency-diff',
          unit: 'ms',
          zeroLine: true,
          rows: others.map((a) => ({
            label: a.arm,
            value: a.vs_control.latency_ms.diff,
            ci: a.vs_control.latency_ms.ci95,
            sequence: a.vs_control.latency_ms.cs95,
          })),
        })
      : null,
  );
}

// A history entry in words; unknown kinds show their detail as JSON.
function historyText(x: Json): string {
  const d = x.detail || {};
  switch (x.kind) {
    case 'start':
      return `started; arms fixed to ${Object.entries(d.versions || {})
        .map(([arm, v]) => `${arm} v${v}`)
        .join(', ')}`;
    case 'kill':
      return 'kill switch on: everyone gets control';
    case 'unkill':
      return 'kill switch off';
    case 'weights':
      return `weights set to ${(d.weights || []).join(' / ')}`;
    case 'alias_forced':
      return `alias ${d.alias} forced to v${d.to_version} while running (the arm keeps its version)`;
    case 'stop':
    case 'guardrail':
    case 'promote':
    case 'auto_promote':
      return d.reason || x.kind;
    default:
      return JSON.stringify(d);
  }
}

const HISTORY_KINDS: Record<string, string> = {
  alias_forced: 'forced alias move',
  auto_promote: 'auto-promoted',
  promote: 'promoted',
  guardrail: 'guardrail tripped',
  unkill: 'kill switch off',
  kill: 'kill switch on',
};

function historySection(r: Json): HTMLElement {
  const entries: Json[] = r.history;
  return h(
    'section',
    { testid: 'exp-history' },
    h('h3', {}, 'History'),
    entries.length
      ? table(
          ['When', 'What', 'Detail', 'By'],
          entries.map((x) =>
            h(
              'tr',
              { testid: `history-${x.kind}` },
              h('td', {}, when(x.at)),
              h('td', { testid: 'history-kind' }, HISTORY_KINDS[x.kind] ?? x.kind),
              h('td', { testid: 'history-detail' }, historyText(x)),
              h('td', { class: 'muted' }, x.by ?? 'Versa (automatic)'),
            ),
          ),
        )
      : h('p', { class: 'muted' }, 'Nothing yet: a draft.'),
  );
}
