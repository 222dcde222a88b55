import { existsSync } from 'node:fs';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { publishFolder } from '../../registry/local.ts';
import { serveRequests } from '../helpers/experiments.ts';
import { fixture } from '../helpers/fixtures.ts';
import { startProduct, type TestProduct } from '../helpers/product.ts';
import { CHROMIUM, launchChromium, type Browser } from './browser.ts';

/**
 * The dashboard end to end in headless Chromium, driven through the UI only (the API is used to
 * publish, which the UI does not do, and to check that what the UI shows is what the API says):
 * publish -> alias move and rollback -> experiment -> stream in the playground -> feedback ->
 * live results update.
 */
it('Chromium is installed for the dashboard browser test', () => {
  expect(existsSync(CHROMIUM), `no Chromium at ${CHROMIUM}: apt-get install chromium (CI's .ci/run does)`).toBe(true);
});

const CARD =
  '# vlm-max v2\n\nSame weights, **new** card. <script>window.pwned = 1</script> ' +
  '<img src=x onerror="window.pwned = 2">\n\n- greedy\n- `<|max|>` task token\n';
const PROMPT = 'Once upon a time';

describe('dashboard in headless Chromium', () => {
  let product: TestProduct;
  let browser: Browser;
  let page: Page;
  let experimentId: string;
  let served: { arm: string; version: string; text: string };
  const problems: string[] = [];
  const origins = new Set<string>();

  const api = (method: string, path: string, body?: unknown) => product.client.json(method, path, body);
  const text = (testid: string) => page.getByTestId(testid).first().innerText();
  const go = (hash: string) =>
    page.evaluate((h) => {
      location.hash = h;
    }, hash);
  // Generous: on a busy 2-core machine a render or a results refresh can take a while.
  const until = <T>(fn: () => Promise<T>, timeout = 10_000) => expect.poll(fn, { timeout });

  beforeAll(async () => {
    browser = await launchChromium(); // first: a missing Chromium fails here with the install hint
    product = await startProduct();
    page = await browser.context.newPage();
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`);
    });
    page.on('request', (r) => origins.add(new URL(r.url()).origin));
  });
  afterAll(async () => {
    await browser?.close();
    await product?.close();
  });

  it('takes the key from #key=, keeps it in localStorage and wipes it from the address', async () => {
    await page.goto(`${product.registry.url}/ui#key=${product.registry.adminKey}`);
    await until(() => text('whoami')).toContain('tenant acme');
    expect(page.url()).toBe(`${product.registry.url}/ui#/adapters`);
    expect(await page.evaluate(() => localStorage.getItem('versa.apiKey'))).toBe(product.registry.adminKey);
    await until(() => page.getByTestId('adapter-row-lora-max').count()).toBe(1);
  });

  it('a #key= link never silently replaces another stored key: it asks, and declining keeps the key', async () => {
    const dialogs: string[] = [];
    page.once('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    await page.goto('about:blank'); // a fresh load: the page reads the fragment when it starts
    await page.goto(`${product.registry.url}/ui#key=vsk_someone-elses-key-0000000000`);
    await until(async () => dialogs.length).toBe(1);
    expect(dialogs[0]).toMatch(/another API key/);
    expect(await page.evaluate(() => localStorage.getItem('versa.apiKey'))).toBe(product.registry.adminKey);
    expect(page.url()).toBe(`${product.registry.url}/ui#/adapters`);
  });

  it('shows a newly published version with the numbers the API gives, and its card as text', async () => {
    const published = await publishFolder(product.client, fixture('stories260k/adapters/vlm-max'), 'vlm-max', {
      base: 'stories260k@1',
      card: CARD,
    });
    expect(published.version).toBe(2);
    await page.getByLabel('Search').fill('vlm');
    await page.getByTestId('adapter-search-submit').click();
    await until(() => page.getByTestId('adapters-count').innerText()).toBe('1 adapter');
    expect(await page.getByTestId('adapter-row-lora-max').count()).toBe(0);
    await page.getByRole('link', { name: 'vlm-max', exact: true }).click();

    const v2 = await api('GET', '/v1/adapters/vlm-max/versions/2');
    const row = page.getByTestId('version-row-2');
    await row.waitFor();
    expect(await row.getByTestId('version-sha256').innerText()).toBe(v2.sha256);
    expect(await row.getByTestId('version-params').innerText()).toBe(v2.params.toLocaleString('en-US'));
    expect(await row.getByTestId('version-pct').innerText()).toBe(`${Number(v2.params_pct_of_base.toPrecision(3))} %`);
    expect(await row.getByTestId('version-status').innerText()).toBe('active');
    // The latest version's details open by default; its card is markdown, its HTML stays text.
    const card = page.getByTestId('model-card');
    await until(() => card.locator('h3').innerText()).toBe('vlm-max v2');
    expect(await card.locator('strong').innerText()).toBe('new');
    expect(await card.innerText()).toContain('<script>window.pwned = 1</script>');
    expect(await card.locator('script, img').count()).toBe(0);
    expect(await card.locator('li code').innerText()).toBe('<|max|>');
    expect(await page.evaluate(() => (window as any).pwned)).toBeUndefined();
  });

  it("deprecates and reactivates a version; a refused yank shows the API's reason", async () => {
    await page.getByTestId('version-deprecate-2').click();
    await until(() => text('adapter-status')).toBe('vlm-max@2 is now deprecated.');
    expect(await page.getByTestId('version-row-2').getByTestId('version-status').innerText()).toBe('deprecated');
    expect((await api('GET', '/v1/adapters/vlm-max/versions/2')).status).toBe('deprecated');
    await page.getByTestId('version-activate-2').click();
    await until(() => text('adapter-status')).toBe('vlm-max@2 is now active.');
    expect((await api('GET', '/v1/adapters/vlm-max/versions/2')).status).toBe('active');

    page.once('dialog', (d) => d.accept()); // "Yank vlm-max@1? ..."
    await page.getByTestId('version-yank-1').click();
    await until(() => page.getByTestId('adapter-view').getByRole('alert').innerText()).toBe(
      'alias "production" points to version 1: move it first',
    );
    expect((await api('GET', '/v1/adapters/vlm-max/versions/1')).status).toBe('active');
  });

  it('moves the alias to the new version and rolls it back in one click, with the history', async () => {
    await page.getByTestId('alias-target-production').selectOption('2');
    await page.getByTestId('alias-move-production').click();
    await until(() => text('adapter-status')).toBe('production moved from v1 to v2.');
    expect(await text('alias-version-production')).toBe('v2');
    expect((await api('GET', '/v1/adapters/vlm-max/aliases/production')).version).toBe(2);

    // Rollback from the keyboard: the buttons are real buttons.
    await page.getByTestId('alias-rollback-production').focus();
    await page.keyboard.press('Enter');
    await until(() => text('adapter-status')).toBe('production rolled back from v2 to v1.');
    expect(await text('alias-version-production')).toBe('v1');
    expect((await api('GET', '/v1/adapters/vlm-max/aliases/production')).version).toBe(1);

    const history = (await api('GET', '/v1/adapters/vlm-max/aliases/production/history')).data;
    expect(history.map((m: any) => m.kind)).toEqual(['rollback', 'move', 'set']);
    const rows = page.getByTestId('alias-history-production').locator('tbody tr');
    expect(await rows.count()).toBe(history.length);
    const shown = [];
    for (let i = 0; i < history.length; i++) {
      const r = rows.nth(i);
      shown.push([
        await r.getByTestId('history-kind').innerText(),
        await r.getByTestId('history-from').innerText(),
        await r.getByTestId('history-to').innerText(),
      ]);
    }
    expect(shown).toEqual(
      history.map((m: any) => [m.kind, m.from_version === null ? '–' : `v${m.from_version}`, `v${m.to_version}`]),
    );
  });

  it('creates and starts an experiment v1 (control) against v2', async () => {
    await page.getByTestId('adapter-experiments-link').click();
    await page.getByTestId('exp-form').waitFor();
    await page.getByLabel('Name', { exact: true }).fill('v2 vs v1 from the dashboard');
    await page.getByTestId('arm-target-0').selectOption('v:1');
    await page.getByTestId('arm-target-1').selectOption('v:2');
    expect(await page.getByTestId('exp-start-now').isChecked()).toBe(true);
    await page.getByTestId('exp-create').click();
    await page.getByTestId('results-table').waitFor();
    experimentId = await text('exp-id');
    expect(page.url()).toContain(`#/experiment/${experimentId}`);
    expect(await text('exp-status')).toBe('running');
    const created = await api('GET', `/v1/experiments/${experimentId}`);
    expect(created).toMatchObject({
      name: 'v2 vs v1 from the dashboard',
      adapter: 'vlm-max',
      status: 'running',
      killed: false,
    });
    expect(created.arms).toEqual([
      { name: 'control', version: 1, alias: null, weight: 50, resolved_version: 1 },
      { name: 'candidate', version: 2, alias: null, weight: 50, resolved_version: 2 },
    ]);
    for (const arm of ['control', 'candidate']) expect(await text(`arm-${arm}-requests`)).toBe('0');
  });

  it('streams a completion in the playground and shows the version and arm that served it', async () => {
    await page.getByRole('link', { name: 'Send it traffic in the playground' }).click();
    await page.getByTestId('playground-view').waitFor();
    expect(await page.getByTestId('pg-model').inputValue()).toBe('vlm-max');
    // The model field suggests what GET /v1/models lists.
    const suggestions = await page
      .locator('#pg-models option')
      .evaluateAll((os) => os.map((o) => (o as HTMLOptionElement).value));
    expect(suggestions).toEqual((await api('GET', '/v1/models')).data.map((m: any) => m.id));

    await page.getByLabel('Prompt').fill(PROMPT);
    await page.getByLabel('Max tokens').fill('24');
    await page.getByLabel('Temperature').fill('0');
    await page.getByLabel('Experiment unit (user)').fill('dashboard-unit-1');
    await page.getByTestId('pg-stream').click();
    await page.locator('[data-testid=pg-stats][data-done]').waitFor();
    const output = await page.getByTestId('pg-output').innerText();
    const chunks = Number(await page.getByTestId('pg-output').getAttribute('data-chunks'));
    expect(chunks).toBeGreaterThan(1); // appended piece by piece as the stream arrived

    // The same request through the API (greedy, same unit) gives the same text, version and arm.
    const { data, response } = await product
      .openai()
      .chat.completions.create({
        model: 'vlm-max',
        messages: [{ role: 'user', content: PROMPT }],
        max_tokens: 24,
        temperature: 0,
        user: 'dashboard-unit-1',
      })
      .withResponse();
    expect(output).toBe(data.choices[0].message.content);
    served = {
      arm: response.headers.get('x-versa-arm')!,
      version: response.headers.get('x-versa-adapter-version')!,
      text: output,
    };
    expect(served.version).toBe(served.arm === 'control' ? '1' : '2');
    expect(await text('pg-version')).toBe(`vlm-max@${served.version}`);
    expect(await text('pg-arm')).toBe(served.arm);
    expect(await text('pg-experiment')).toBe(experimentId);
    expect(await text('pg-base')).toBe('stories260k@1');
    expect(await text('pg-completion-id')).toMatch(/^chatcmpl-/);
  });

  it('sends thumbs-up feedback for that completion', async () => {
    await page.getByTestId('pg-thumbs-up').click();
    const id = await text('pg-completion-id');
    await until(() => text('pg-feedback-status')).toBe(
      `Feedback 1 recorded for ${id} (experiment ${experimentId}, arm ${served.arm}).`,
    );
    expect(await page.getByTestId('pg-thumbs-up').isDisabled()).toBe(true);
  });

  it('previews the prompt the chat template renders and its token count, without generating', async () => {
    const model = `vlm-max@${served.version}`;
    await page.getByTestId('pg-model').fill(model);
    await page.getByTestId('pg-preview-button').click();
    await until(() => text('pg-preview-stats')).toMatch(/prompt tokens? of a context of 512/);
    const expected = await api('POST', '/v1/tokenize', { model, messages: [{ role: 'user', content: PROMPT }] });
    expect(await page.getByTestId('pg-preview').innerText()).toBe(expected.prompt);
    expect(await text('pg-preview-stats')).toBe(`${expected.count} prompt tokens of a context of 512.`);
    await page.getByTestId('pg-model').fill('vlm-max');
  });

  it('the experiment page shows the traffic and feedback, and updates live', async () => {
    await page.getByTestId('pg-experiment').getByRole('link').click();
    await page.getByTestId('results-table').waitFor();
    const { arm } = served;
    const other = arm === 'control' ? 'candidate' : 'control';
    // One unit, two requests (the playground's and the API's), one score of 1.
    await until(() => text(`arm-${arm}-requests`)).toBe('2');
    expect(await text(`arm-${arm}-units`)).toBe('1');
    expect(await text(`arm-${arm}-feedback`)).toMatch(/^1\nn = 1, /);
    expect(await text(`arm-${other}-requests`)).toBe('0');
    expect(await page.getByTestId('chart-latency').locator(`g[data-arm="${arm}"] rect.bar`).count()).toBe(1);
    expect(await page.getByTestId('chart-feedback').locator(`g[data-arm="${arm}"] circle.dot`).count()).toBe(1);
    expect(await page.getByTestId('srm-warning').count()).toBe(0);

    // Traffic from elsewhere shows up without touching the page.
    const before = await text('results-updated');
    const users = Array.from({ length: 6 }, (_, i) => `live-unit-${i}`);
    for (const user of users)
      await product
        .openai()
        .completions.create({ model: 'vlm-max', prompt: PROMPT, max_tokens: 2, temperature: 0, user });
    const total = async (field: string) =>
      Number(await text(`arm-control-${field}`)) + Number(await text(`arm-candidate-${field}`));
    await until(() => total('requests'), 15_000).toBe(2 + users.length);
    expect(await total('units')).toBe(1 + users.length);
    expect(await text('results-updated')).not.toBe(before);

    const results = await api('GET', `/v1/experiments/${experimentId}/results`);
    for (const a of results.arms) {
      expect(await text(`arm-${a.arm}-requests`)).toBe(String(a.requests));
      expect(await text(`arm-${a.arm}-units`)).toBe(String(a.units));
      expect(await text(`arm-${a.arm}-tokens`)).toBe(
        `${a.tokens.prompt.toLocaleString('en-US')} / ${a.tokens.completion.toLocaleString('en-US')}`,
      );
      expect(await page.getByTestId('chart-latency').locator(`g[data-arm="${a.arm}"] rect.bar`).count()).toBe(
        a.requests ? 1 : 0,
      );
    }
  });

  it('warns about a sample-ratio mismatch', async () => {
    const skewed = await api('POST', '/v1/experiments', {
      name: 'skewed',
      adapter: 'lora-max',
      status: 'running',
      arms: [
        { name: 'a', alias: 'production', weight: 50 },
        { name: 'b', alias: 'production', weight: 50 },
      ],
    });
    const served = (arm: number, n: number) => Array.from({ length: n }, (_, i) => ({ unit: `${arm}-${i}`, arm }));
    await serveRequests(product.registry.registry, skewed.id, [...served(0, 700), ...served(1, 300)]);
    await go(`#/experiment/${skewed.id}`);
    const warning = page.getByTestId('srm-warning');
    await warning.waitFor();
    expect(await warning.innerText()).toMatch(
      /^Sample ratio mismatch\. Units per arm \(a 700, b 300\) do not fit the weights \(a 50 %, b 50 %\)/,
    );
    expect(await warning.getAttribute('role')).toBe('alert');
  });

  it('pulls the kill switch', async () => {
    await go(`#/experiment/${experimentId}`);
    await page.getByTestId('exp-kill').click();
    await until(() => page.getByTestId('exp-killed').count()).toBe(1);
    expect(await page.getByTestId('exp-kill').getAttribute('aria-pressed')).toBe('true');
    expect((await api('GET', `/v1/experiments/${experimentId}`)).killed).toBe(true);
  });

  it('shows API errors to the user', async () => {
    await go('#/playground?model=vlm-max');
    await page.getByLabel('Model', { exact: true }).fill('no-such-adapter');
    await page.getByTestId('pg-stream').click();
    await until(() => page.getByTestId('playground-view').getByRole('alert').first().innerText()).toBe(
      'model "no-such-adapter" not found',
    );
  });

  it('lists base models with their versions and adapters', async () => {
    await go('#/models');
    const model = await api('GET', '/v1/models/stories260k');
    const row = page.getByTestId('model-stories260k').getByTestId('model-version-1');
    await row.waitFor();
    expect(await row.locator('code.hash').innerText()).toBe(model.versions[0].sha256);
    expect(await page.getByTestId('model-stories260k').getByRole('link').allInnerTexts()).toEqual([
      'lora-max',
      'vlm-max',
    ]);
  });

  it('forgets the key, refuses a bad one and takes a good one typed in', async () => {
    await page.getByTestId('key-forget').click();
    await page.getByTestId('key-form').waitFor();
    expect(await page.evaluate(() => localStorage.getItem('versa.apiKey'))).toBeNull();
    await page.getByLabel('API key').fill('vsk_notAKeyAnyoneWasGiven0000000000');
    await page.getByTestId('key-save').click();
    await until(() => page.getByTestId('key-form').getByRole('alert').innerText()).toBe('invalid or revoked API key');
    expect(await page.evaluate(() => localStorage.getItem('versa.apiKey'))).toBeNull();
    await page.getByLabel('API key').fill(product.registry.adminKey);
    await page.getByLabel('API key').press('Enter');
    await until(() => text('whoami')).toContain('tenant acme');
    await page.getByTestId('model-stories260k').waitFor(); // back on the view it was showing
  });

  it('talked to its own origin only, without errors', () => {
    expect([...origins]).toEqual([product.registry.url]);
    // The expected console errors: the 409 refused yank, the 404 bad model name and the 401 bad key above.
    expect(problems.filter((p) => !/status of (404|401|409)/.test(p))).toEqual([]);
  });
});
