import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRegistry, startWorkerRegistry, type TestRegistry } from '../helpers/registry.ts';
import { UI_ASSETS } from '../../src/edge/ui/routes.ts';

/** GET /ui without a browser: the page and its modules are served, need no key, and hold together. */
describe('dashboard route /ui', () => {
  let registry: TestRegistry;
  beforeAll(async () => {
    registry = await startRegistry('sqlite');
  });
  afterAll(() => registry?.close());

  it('serves the page as HTML without an API key, locked to this origin', async () => {
    const res = await registry.fetch('/ui', { key: null });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    const csp = res.headers.get('content-security-policy')!;
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("connect-src 'self'");
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    const html = await res.text();
    expect(html).toMatch(/^<!doctype html>/);
    expect(html).toContain('<script type="module" src="/ui/assets/app.js"></script>');
    expect(html).toContain('<link rel="stylesheet" href="/ui/assets/styles.css">');
    expect(html).not.toContain('vsk_');
    const slash = await registry.fetch('/ui/', { key: null, redirect: 'manual' });
    expect(slash.status).toBe(301);
    expect(slash.headers.get('location')).toBe('/ui');
  });

  it('serves every asset with its content type; unknown ones are JSON 404s', async () => {
    for (const [name, asset] of Object.entries(UI_ASSETS)) {
      const res = await registry.fetch(`/ui/assets/${name}`, { key: null });
      expect(res.status, name).toBe(200);
      expect(res.headers.get('content-type')).toBe(
        name.endsWith('.js') ? 'text/javascript; charset=utf-8' : 'text/css; charset=utf-8',
      );
      expect(await res.text()).toBe(asset.body);
    }
    const missing = await registry.fetch('/ui/assets/nope.js', { key: null });
    expect(missing.status).toBe(404);
    expect((await missing.json()).error.code).toBe('route_not_found');
    expect((await registry.fetch('/ui/assets/constructor', { key: null })).status).toBe(404);
  });

  it('the browser modules import only each other and nothing from another origin', () => {
    const modules = Object.keys(UI_ASSETS).filter((n) => n.endsWith('.js'));
    const imported = new Set<string>();
    for (const name of modules) {
      const source = UI_ASSETS[name].body;
      for (const { fileName: spec } of ts.preProcessFile(source, true, true).importedFiles) {
        expect(modules, `${name} imports ${spec}`).toContain(spec.replace(/^\.\//, ''));
        imported.add(spec.replace(/^\.\//, ''));
      }
      // No CDN and no other origin: the only URL is the SVG namespace.
      const urls = /\b(?:https?:)?\/\/[a-z0-9.-]+\.[a-z]{2,}/gi;
      expect(source.replaceAll('http://www.w3.org/2000/svg', '').match(urls), name).toBeNull();
    }
    // The page loads app.js; every other module is imported by one of them.
    expect([...imported].sort()).toEqual(modules.filter((n) => n !== 'app.js').sort());
    // Their types are checked where they are written, in src/edge/ui/client/*.ts, by tsc (test/ui/ui-assets.test.ts).
  });

  it('the route imports nothing node-only (it runs in the Worker too)', () => {
    const dir = join(import.meta.dirname, '../../src/edge/ui');
    const files = readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts'));
    expect(files.length).toBeGreaterThan(5);
    for (const f of files) {
      const text = readFileSync(join(dir, f), 'utf8');
      for (const [, spec] of text.matchAll(/^import .* from '([^']+)';$/gm))
        expect(spec, f).not.toMatch(/^node:|^(fs|path|os|url|child_process)$/);
    }
  });
});

describe('dashboard route /ui in the Worker', () => {
  it('workerd serves the same page and modules', async () => {
    const worker = await startWorkerRegistry();
    try {
      const page = await worker.fetch('/ui', { key: null });
      expect(page.status).toBe(200);
      expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
      expect(await page.text()).toContain('/ui/assets/app.js');
      const app = await worker.fetch('/ui/assets/app.js', { key: null });
      expect(app.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
      expect(await app.text()).toBe(UI_ASSETS['app.js'].body);
    } finally {
      await worker.close();
    }
  }, 120_000);
});
