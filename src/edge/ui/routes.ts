import { OpenAPIHono } from '@hono/zod-openapi';
import type { AppEnv } from '../env.ts';
import { ApiError } from '../../http/errors.ts';
import { pageHtml } from './page.ts';

/**
 * What the page loads, by name under /ui/assets/, with its content type: scripts/build.mjs bundles
 * src/edge/ui/client/ into these files (dist/ui/).
 */
export const UI_FILES: Readonly<Record<string, string>> = {
  'app.js': 'text/javascript; charset=utf-8',
  'styles.css': 'text/css; charset=utf-8',
};

/**
 * Where the built files are read: the Worker's bundle on Cloudflare (embedded.ts), the build
 * folder on Node (src/http/static-folder.ts). Asked for fixed
 * names only (UI_FILES), never for a path taken from a request.
 */
export interface UiAssets {
  fetch(url: string): Promise<Response>;
}

/**
 * Only this origin, only our own files: the API key lives in this page, so no third-party script
 * may run and nothing may be sent elsewhere (connect-src 'self').
 */
const SECURITY_HEADERS = {
  'content-security-policy': [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join('; '),
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  // Small files that change with each deploy: revalidate rather than guess an expiry.
  'cache-control': 'no-cache',
};

/**
 * The web dashboard at /ui: a static page and its bundle. Loading them needs no key (they hold no
 * data); the page then calls /v1/* with the key the user gives it.
 */
export function uiRoutes(assets: UiAssets | undefined): OpenAPIHono<AppEnv> {
  const app = new OpenAPIHono<AppEnv>();
  app.get('/ui', (c) => c.body(pageHtml, 200, { ...SECURITY_HEADERS, 'content-type': 'text/html; charset=utf-8' }));
  app.get('/ui/', (c) => c.redirect('/ui', 301));
  for (const [name, type] of Object.entries(UI_FILES)) {
    app.get(`/ui/assets/${name}`, async (c) => {
      const file = await assets?.fetch(`https://assets.local/${name}`);
      if (!file?.ok || !file.body) {
        const why = 'the dashboard is not built: run `npm run build` (it bundles src/edge/ui/client/ into dist/ui/)';
        throw new ApiError(503, `${why}; ${name}: ${file ? `HTTP ${file.status}` : 'no asset store'}`, 'ui_not_built');
      }
      return c.body(file.body, 200, { ...SECURITY_HEADERS, 'content-type': type });
    });
  }
  // Any other name is the app's JSON 404. No `/ui/assets/:name` route beside the fixed ones: hono's
  // RegExpRouter refuses that mix, and its fallback (TrieRouter) took 15-20 us of every request.
  return app;
}
