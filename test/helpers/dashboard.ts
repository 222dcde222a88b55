import type { Page } from 'playwright-core';
import type { Browser } from '../ui/browser.ts';
import type { TestProduct } from './product.ts';

/** A dashboard tab signed in with the product's admin key, recording page errors and the origins it talks to. */
export interface DashboardPage {
  page: Page;
  /** Page errors and console errors/warnings, in order. */
  problems: string[];
  origins: Set<string>;
  /** The text of the first element with this data-testid. */
  text(testid: string): Promise<string>;
  /** Goes to a view by its fragment (#/...) without reloading the page. */
  go(hash: string): Promise<void>;
}

export async function openDashboard(browser: Browser, product: TestProduct): Promise<DashboardPage> {
  const page = await browser.context.newPage();
  const problems: string[] = [];
  const origins = new Set<string>();
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`);
  });
  page.on('request', (r) => origins.add(new URL(r.url()).origin));
  await page.goto(`${product.registry.url}/ui#key=${product.registry.adminKey}`);
  await page.getByTestId('whoami').waitFor();
  return {
    page,
    problems,
    origins,
    text: (testid) => page.getByTestId(testid).first().innerText(),
    go: (hash) =>
      page.evaluate((h) => {
        location.hash = h;
      }, hash),
  };
}
