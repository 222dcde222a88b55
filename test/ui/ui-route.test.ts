import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, startRegistry, startWorkerRegistry, type TestRegistry } from '../helpers/registry.ts';
import { startNodeServer } from '../../src/edge/server-node.ts';
import { UI_FILES } from '../../src/edge/ui/routes.ts';

/** dist/ui/: scripts/build.mjs bundles src/edge/ui/client/ there (test/setup/build.ts did, before the tests). */
const UI_DIR = join(REPO_ROOT, 'dist/ui');
const built = (name: string) => readFileSync(join(UI_DIR, name), 'utf8');
const CLIENT_DIR = join(REPO_ROOT, 'src/edge/ui/client');

/** GET /ui without a browser: the page and its bundle are served, need no key, and hold together. */
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

  it('serves each built file with its content type and the page headers; unknown ones are JSON 404s', async () => {
    for (const [name, type] of Object.entries(UI_FILES)) {
      const res = await registry.fetch(`/ui/assets/${name}`, { key: null });
      expect(res.status, name).toBe(200);
      expect(res.headers.get('content-type')).toBe(type);
      expect(res.headers.get('content-security-policy')).toContain("default-src 'none'");
      expect(await res.text()).toBe(built(name));
    }
    for (const name of ['nope.js', 'constructor', '..%2Fpackage.json', '.app.js.tmp']) {
      const missing = await registry.fetch(`/ui/assets/${name}`, { key: null });
      expect(missing.status, name).toBe(404);
      expect((await missing.json()).error.code).toBe('route_not_found');
    }
  });

  it('the bundle is one module: every client module in it, no import, nothing from another origin', () => {
    const bundle = built('app.js');
    expect(ts.preProcessFile(bundle, true, true).importedFiles).toEqual([]);
    // esbuild marks where each module starts: all of client/ is used.
    const modules = readdirSync(CLIENT_DIR).filter((f) => f.endsWith('.ts'));
    expect(modules.length).toBeGreaterThan(5);
    for (const f of modules) expect(bundle, f).toContain(`// src/edge/ui/client/${f}\n`);
    // No CDN and no other origin: the only URL is the SVG namespace.
    const urls = /\b(?:https?:)?\/\/[a-z0-9.-]+\.[a-z]{2,}/gi;
    expect(bundle.replaceAll('http://www.w3.org/2000/svg', '').match(urls)).toBeNull();
    expect(built('styles.css')).toContain('--'); // the stylesheet, custom properties and all
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

describe('dashboard build', () => {
  it('the Node entry serves dist/ui/ as the build left it; without it, a 503 that says to build', async () => {
    const home = mkdtempSync(join(tmpdir(), 'versa-ui-home-'));
    const server = await startNodeServer({ port: 0, home });
    try {
      const res = await fetch(`${server.url}/ui/assets/app.js`);
      expect(res.status).toBe(200);
      expect(await res.text()).toBe(built('app.js'));
    } finally {
      await server.close();
    }
    const unbuilt = await startRegistry('sqlite', {
      deps: { ui: { fetch: async () => new Response(null, { status: 404 }) } },
    });
    try {
      const res = await unbuilt.fetch('/ui/assets/styles.css', { key: null });
      expect(res.status).toBe(503);
      const { error } = await res.json();
      expect(error.code).toBe('ui_not_built');
      expect(error.message).toContain('npm run build');
    } finally {
      await unbuilt.close();
      rmSync(home, { recursive: true, force: true });
    }
  });

  it('`node scripts/build.mjs --ui` bundles the client as it is now', () => {
    // A scratch tree: the build script and the client's sources copied, so that an edit stays there.
    const dir = mkdtempSync(join(tmpdir(), 'versa-ui-build-'));
    try {
      cpSync(join(REPO_ROOT, 'scripts/build.mjs'), join(dir, 'scripts/build.mjs'));
      cpSync(CLIENT_DIR, join(dir, 'src/edge/ui/client'), { recursive: true });
      mkdirSync(join(dir, 'node_modules'));
      symlinkSync(join(REPO_ROOT, 'node_modules/esbuild'), join(dir, 'node_modules/esbuild'));
      const marker = `edited-${process.pid}`;
      const app = join(dir, 'src/edge/ui/client/app.ts');
      writeFileSync(app, `${readFileSync(app, 'utf8')}\nconsole.info('${marker}');\n`);
      const out = execFileSync(process.execPath, ['scripts/build.mjs', '--ui'], { cwd: dir, encoding: 'utf8' });
      expect(out).toBe("dist/ui: the dashboard's bundle\n");
      expect(readdirSync(join(dir, 'dist/ui')).sort()).toEqual(Object.keys(UI_FILES).sort());
      expect(readFileSync(join(dir, 'dist/ui/app.js'), 'utf8')).toContain(marker);
      expect(readFileSync(join(dir, 'dist/ui/styles.css'), 'utf8')).toBe(built('styles.css'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the client has its own tsconfig with the DOM; the server compile has no DOM', () => {
    const config = (path: string) => {
      const fail = (d: ts.Diagnostic) => {
        throw new Error(ts.flattenDiagnosticMessageText(d.messageText, ' '));
      };
      return ts.getParsedCommandLineOfConfigFile(path, {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: fail })!;
    };
    const server = config(join(REPO_ROOT, 'tsconfig.json'));
    const client = config(join(CLIENT_DIR, 'tsconfig.json'));
    const sources = readdirSync(CLIENT_DIR)
      .filter((f) => f.endsWith('.ts'))
      .map((f) => join(CLIENT_DIR, f));
    for (const file of sources) {
      expect(client.fileNames, file).toContain(file);
      expect(server.fileNames, file).not.toContain(file);
    }
    expect(client.options.strict).toBe(true);
    expect(client.options.lib).toContain('lib.dom.d.ts');
    expect(client.options.types).toEqual([]); // no Node in the browser
    expect(server.options.lib).not.toContain('lib.dom.d.ts');
    expect(server.fileNames).toContain(join(REPO_ROOT, 'src/edge/ui/routes.ts'));
  });
});

describe('dashboard route /ui in the Worker', () => {
  it('workerd serves the same page and, from the Worker bundle, the same files', async () => {
    const worker = await startWorkerRegistry();
    try {
      const page = await worker.fetch('/ui', { key: null });
      expect(page.status).toBe(200);
      expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
      expect(await page.text()).toContain('/ui/assets/app.js');
      for (const [name, type] of Object.entries(UI_FILES)) {
        const res = await worker.fetch(`/ui/assets/${name}`, { key: null });
        expect(res.status, name).toBe(200);
        expect(res.headers.get('content-type')).toBe(type);
        expect(res.headers.get('content-security-policy')).toContain("default-src 'none'");
        expect(await res.text()).toBe(built(name));
      }
      // Only through the dashboard's routes.
      const past = await worker.fetch('/app.js', { key: null });
      expect([past.status, (await past.json()).error.code]).toEqual([404, 'route_not_found']);
    } finally {
      await worker.close();
    }
  }, 120_000);
});
