import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { publishFolder } from '../../registry/local.ts';
import { feedbackStatements } from '../../src/experiments/aggregates.ts';
import { openDashboard, type DashboardPage } from '../helpers/dashboard.ts';
import { serveRequests } from '../helpers/experiments.ts';
import { fixture } from '../helpers/fixtures.ts';
import { startProduct, type TestProduct } from '../helpers/product.ts';
import { launchChromium, type Browser } from './browser.ts';

/**
 * The dashboard's experiment page in headless Chromium against the real product: an experiment
 * created from the form with a declared metric and a guardrail, real traffic and feedback through
 * the API, per-unit figures, the sequential verdict beside the fixed-horizon one, guardrail state,
 * resolved arm versions, history, and promotion with the button. (Chromium's presence is checked,
 * with the install hint, by dashboard.test.ts.)
 */

// The page's number formats (dom.ts sig and the results' p-values), to compare what it shows with the API.
// No value (an arm the random seed gave no unit, about 1 run in 128) shows as "–", as dom.ts does.
const sig = (x: number | null, digits = 3) => (x === null ? '–' : String(Number(x.toPrecision(digits))));
const pText = (p: number) => (p < 1e-6 ? '< 0.000001' : `= ${sig(p, 2)}`);
const intervalText = (ci: number[], p: number) => `[${sig(ci[0])}, ${sig(ci[1])}], p ${pText(p)}`;

describe('experiment page in headless Chromium', () => {
  let product: TestProduct;
  let browser: Browser;
  let ui: DashboardPage;
  let experimentId: string;

  const api = (method: string, path: string, body?: unknown) => product.client.json(method, path, body);
  const results = () => api('GET', `/v1/experiments/${experimentId}/results`);
  const until = <T>(fn: () => Promise<T>, timeout = 15_000) => expect.poll(fn, { timeout });
  const text = (testid: string) => ui.text(testid);

  beforeAll(async () => {
    browser = await launchChromium();
    product = await startProduct();
    // vlm-max v2, the candidate; production stays on v1.
    await publishFolder(product.client, fixture('stories260k/adapters/vlm-max'), 'vlm-max', {
      base: 'stories260k@1',
      card: '# vlm-max v2',
    });
    ui = await openDashboard(browser, product);
  });
  afterAll(async () => {
    await browser?.close();
    await product?.close();
  });

  it('creates an experiment with a scale metric, a guardrail and an alias arm from the form', async () => {
    await ui.go('#/experiments/vlm-max');
    const page = ui.page;
    await page.getByTestId('exp-form').waitFor();
    await page.getByTestId('exp-name').fill('stars: v2 vs production');
    await page.getByTestId('arm-target-0').selectOption('a:production');
    await page.getByTestId('arm-target-1').selectOption('v:2');
    await page.getByTestId('metric-name').fill('stars');
    await page.getByTestId('metric-kind').selectOption('scale');
    await page.getByTestId('metric-min').fill('1');
    await page.getByTestId('metric-max').fill('5');
    await page.getByTestId('guardrail-error_rate-on').check();
    await page.getByTestId('guardrail-error_rate-tolerance').fill('2');
    await page.getByTestId('exp-create').click();
    await page.getByTestId('results-table').waitFor();
    experimentId = await text('exp-id');

    const created = await api('GET', `/v1/experiments/${experimentId}`);
    expect(created).toMatchObject({
      name: 'stars: v2 vs production',
      status: 'running',
      metrics: [{ name: 'stars', kind: 'scale', min: 1, max: 5 }],
      guardrails: { error_rate: 0.02 },
      auto_promote: false,
    });
    expect(created.arms).toEqual([
      { name: 'control', version: null, alias: 'production', weight: 50, resolved_version: 1 },
      { name: 'candidate', version: 2, alias: null, weight: 50, resolved_version: 2 },
    ]);
    expect(await text('exp-metric')).toBe('stars: scale 1–5 (whole numbers)');
    expect(await text('arm-control-version')).toBe('control: alias production → v1');
    expect(await text('arm-candidate-version')).toBe('candidate: v2');
    expect(await text('guardrails-state')).toBe('ok');
    const check = page.getByTestId('guardrail-candidate-error_rate');
    expect(await check.getByTestId('guardrail-tolerance').innerText()).toBe('+2 points');
    expect(await check.getByTestId('guardrail-state').innerText()).toBe('ok');
    expect(await text('verdict-candidate-verdict')).toBe('too few units yet');
    expect(await text('history-start')).toContain('started; arms fixed to control v1, candidate v2');
  });

  it('shows per-unit figures for real traffic and feedback sent through the API', async () => {
    const openai = product.openai();
    const users = Array.from({ length: 6 }, (_, i) => `ui-user-${i}`);
    // Each user twice (one unit, two requests); two requests without a user: a unit each.
    for (const user of [...users, ...users, undefined, undefined]) {
      const { data, response } = await openai.completions
        .create({ model: 'vlm-max', prompt: 'Once upon a time', max_tokens: 2, temperature: 0, user })
        .withResponse();
      const score = response.headers.get('x-versa-arm') === 'candidate' ? 4 : 2;
      await api('POST', '/v1/feedback', { completion_id: data.id, score });
    }
    const sum = async (field: string) =>
      Number(await text(`arm-control-${field}`)) + Number(await text(`arm-candidate-${field}`));
    await until(() => sum('requests')).toBe(14);
    expect(await sum('units')).toBe(8);
    expect(await sum('per-request-units')).toBe(2);
    const r = await results();
    for (const a of r.arms) {
      expect(await text(`arm-${a.arm}-units`)).toBe(String(a.units));
      expect(await text(`arm-${a.arm}-per-request-units`)).toBe(String(a.per_request_units));
      expect(await text(`arm-${a.arm}-requests-per-unit`)).toMatch(new RegExp(`^${sig(a.requests_per_unit.mean)}\\n`));
      const n = a.feedback.n;
      expect(n).toBe(a.requests); // every completion scored once
      expect(await text(`arm-${a.arm}-feedback`)).toMatch(
        new RegExp(`^${n ? sig(a.feedback.mean) : '–'}\\nn = ${n}, `),
      );
    }
  });

  it('shows the sequential verdict and interval next to the fixed-horizon one, and the promotable arm', async () => {
    // 30 more units per arm (written through the edge's own aggregate statements): candidate scores higher.
    const units = (arm: number) => Array.from({ length: 30 }, (_, i) => ({ unit: `sim-${arm}-${i}`, arm }));
    const simulated = [...units(0), ...units(1)];
    const { registry } = product.registry;
    await serveRequests(registry, experimentId, simulated);
    const scores = simulated.flatMap((u, i) =>
      feedbackStatements(registry.db, {
        experimentId,
        unit: u.unit,
        arm: u.arm,
        completionId: `sim-completion-${i}`,
        metric: 'stars',
        value: u.arm === 0 ? 2 + (i % 2) : 4 + (i % 2),
      }),
    );
    await registry.atomic(scores);

    await until(() => text('verdict-candidate-verdict')).toBe('better than control');
    expect(await text('promotable-candidate')).toBe('promotable');
    const r = await results();
    expect(r.promotable).toMatchObject({ arm: 'candidate' });
    const d = r.arms.find((a: any) => a.arm === 'candidate').vs_control.feedback;
    expect(await text('verdict-candidate-sequential')).toBe(intervalText(d.cs95, d.p_value));
    expect(await text('verdict-candidate-fixed')).toBe(intervalText(d.ci95, d.p_value_fixed));
    // The always-valid interval is the wider one: the price of peeking safely.
    expect(d.cs95[1] - d.cs95[0]).toBeGreaterThan(d.ci95[1] - d.ci95[0]);
    const diff = ui.page.getByTestId('chart-feedback-diff').locator('g[data-arm="candidate"]');
    expect(await diff.locator('line.sequence').count()).toBe(3);
    expect(await diff.locator('line.whisker').count()).toBe(3);
  });

  it('records a forced move of the alias arm in the history; the arm keeps its version', async () => {
    const move = (version: number) =>
      api('PUT', '/v1/adapters/vlm-max/aliases/production', { version, force: true, reason: 'hotfix' });
    await move(2);
    await move(1);
    await until(() => ui.page.getByTestId('history-alias_forced').count()).toBe(2);
    expect(await ui.page.getByTestId('history-alias_forced').first().getByTestId('history-detail').innerText()).toBe(
      'alias production forced to v2 while running (the arm keeps its version)',
    );
    expect(await text('arm-control-version')).toBe('control: alias production → v1');
  });

  it('promotes the candidate with the button after a confirmation: production moves, experiment stops', async () => {
    const page = ui.page;
    const dialogs: string[] = [];
    page.once('dialog', (d) => {
      dialogs.push(d.message());
      void d.accept();
    });
    await page.getByTestId('promote-candidate').click();
    await until(() => text('exp-action-status')).toBe(
      'Promoted candidate: production moved from v1 to v2; the experiment is stopped.',
    );
    expect(dialogs).toEqual([
      'Promote arm "candidate" (v2)? The adapter\'s production alias moves to v2 and the experiment stops.',
    ]);
    expect(await text('exp-status')).toBe('stopped');
    await until(() => page.getByTestId('history-promote').count()).toBe(1);
    expect(await page.locator('[data-testid^=promote-]').count()).toBe(0);
    // Over: nothing left to stop, ramp or kill.
    for (const control of ['exp-stop', 'exp-kill', 'weight-candidate']) {
      expect(await page.getByTestId(control).count()).toBe(0);
    }
    expect(await text('exp-stop-reason')).toContain(`experiment ${experimentId}`);

    expect((await api('GET', `/v1/experiments/${experimentId}`)).status).toBe('stopped');
    expect((await api('GET', '/v1/adapters/vlm-max/aliases/production')).version).toBe(2);
    const history = (await api('GET', '/v1/adapters/vlm-max/aliases/production/history')).data;
    expect(history[0]).toMatchObject({ to_version: 2, from_version: 1 });
    expect(history[0].reason).toContain(experimentId);
    await ui.go('#/experiments/vlm-max');
    expect(
      await ui.page.getByTestId(`exp-row-${experimentId}`).getByTestId('exp-row-stop-reason').innerText(),
    ).toContain('promoted arm "candidate"');
    await ui.go('#/adapters/vlm-max');
    await until(() => text('alias-version-production')).toBe('v2');
  });

  it('creates a draft with auto-promotion and a continuous metric; an alias arm is fixed when it starts', async () => {
    const page = ui.page;
    await ui.go('#/experiments/lora-max');
    await page.getByTestId('exp-form').waitFor();
    await page.getByTestId('exp-name').fill('auto draft');
    await page.getByTestId('arm-target-0').selectOption('a:production');
    await page.getByTestId('metric-name').fill('latency_saved');
    await page.getByTestId('metric-kind').selectOption('continuous');
    await page.getByTestId('metric-min').fill('-2.5');
    await page.getByTestId('metric-max').fill('10');
    await page.getByTestId('guardrail-p95_latency-on').check();
    await page.getByTestId('guardrail-tokens_per_request-on').check();
    await page.getByTestId('guardrail-tokens_per_request-tolerance').fill('50');
    await page.getByTestId('exp-auto-promote').check();
    await page.getByTestId('exp-start-now').uncheck();
    await page.getByTestId('exp-create').click();
    await page.getByTestId('exp-start').waitFor();
    const draft = await api('GET', `/v1/experiments/${await text('exp-id')}`);
    expect(draft).toMatchObject({
      status: 'draft',
      auto_promote: true,
      metrics: [{ name: 'latency_saved', kind: 'continuous', min: -2.5, max: 10 }],
      guardrails: { p95_latency: 0.2, tokens_per_request: 0.5 },
    });
    expect(draft.arms[0]).toMatchObject({ alias: 'production', resolved_version: null });
    await until(() => text('exp-auto-promote')).toBe('on');
    expect(await text('exp-metric')).toBe('latency_saved: continuous in [-2.5, 10]');
    expect(await text('arm-control-version')).toBe('control: alias production (version fixed when started)');
  });

  it('shows a guardrail that halted a slowed arm, and why', async () => {
    const slowed = await api('POST', '/v1/experiments', {
      name: 'slow candidate',
      adapter: 'lora-max',
      status: 'running',
      arms: [
        { name: 'a', alias: 'production', weight: 50 },
        { name: 'b', alias: 'production', weight: 50 },
      ],
      guardrails: { p95_latency: 0.2 },
    });
    const units = (arm: number, latencyMs: number) =>
      Array.from({ length: 30 }, (_, i) => ({ unit: `slow-${arm}-${i}`, arm, latencyMs }));
    await serveRequests(product.registry.registry, slowed.id, [...units(0, 100), ...units(1, 1000)]);
    await ui.go(`#/experiment/${slowed.id}`);
    // A tripped guardrail pulls the kill switch: the experiment stays running, everyone gets control.
    await until(() => ui.page.getByTestId('exp-killed').count()).toBe(1);
    expect(await text('exp-status')).toBe('running');
    expect(await ui.page.getByTestId('exp-kill').getAttribute('aria-pressed')).toBe('true');
    expect(await text('guardrails-state')).toBe('violated');
    const check = ui.page.getByTestId('guardrail-b-p95_latency');
    expect(await check.getByTestId('guardrail-state').innerText()).toBe('violated');
    expect(await check.getByTestId('guardrail-tolerance').innerText()).toBe('+20 %');
    // The reason names the guardrail, the arm and what was measured.
    const reason = (await api('GET', `/v1/experiments/${slowed.id}`)).stop_reason;
    expect(reason).toMatch(
      /^guardrail p95_latency \(tolerance 0\.2\) violated by arm "b" \(control_p95_ms [\d.]+, arm_p95_ms [\d.]+, /,
    );
    const banner = await text('guardrail-stop');
    expect(banner.startsWith(`A guardrail tripped. ${reason} (`)).toBe(true);
    expect(banner).toContain('). The kill switch is on: every unit gets the control arm');
    await until(() => text('exp-stop-reason')).toBe(reason);
    expect((await api('GET', `/v1/experiments/${slowed.id}`)).killed).toBe(true);
    expect(await text('exp-metric')).toBe('score: continuous in [-1000000, 1000000]');
    expect(await text('verdict-b-sequential')).toBe('no interval yet'); // no scores
    expect(await ui.page.getByTestId('history-guardrail').count()).toBe(1);
  });

  it('talked to its own origin only, without errors', () => {
    expect([...ui.origins]).toEqual([product.registry.url]);
    expect(ui.problems).toEqual([]);
  });
});
