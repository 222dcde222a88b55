import { OpenAPIHono } from '@hono/zod-openapi';
import type { Context } from 'hono';
import type { AppEnv } from '../../../registry/http.ts';
import { ApiError } from '../../http/errors.ts';
import { CLIENT_ASSETS } from './assets.generated.ts';
import { pageHtml } from './page.ts';

const CONTENT_TYPES: Record<string, string> = {
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
};

/**
 * Everything the page loads, by file name under /ui/assets/: the sources in client/, built into strings by
 * scripts/generate-ui-assets.ts. Strings in the bundle: no file reads, the same on Workers and Node.
 */
export const UI_ASSETS: Record<string, { type: string; body: string }> = Object.fromEntries(
  Object.entries(CLIENT_ASSETS).map(([name, body]) => [name, { type: CONTENT_TYPES[name.split('.').pop()!], body }]),
);

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

function send(c: Context<AppEnv>, type: string, body: string): Response {
  return c.body(body, 200, { ...SECURITY_HEADERS, 'content-type': type });
}

/**
 * The web dashboard at /ui: a static page and its ES modules. Loading them needs no key (they hold
 * no data); the page then calls /v1/* with the key the user gives it.
 */
export function uiRoutes(): OpenAPIHono<AppEnv> {
  const app = new OpenAPIHono<AppEnv>();
  app.get('/ui', (c) => send(c, 'text/html; charset=utf-8', pageHtml));
  app.get('/ui/', (c) => c.redirect('/ui', 301));
  app.get('/ui/assets/:name', (c) => {
    const name = c.req.param('name');
    const asset = Object.hasOwn(UI_ASSETS, name) ? UI_ASSETS[name] : undefined;
    if (!asset) throw new ApiError(404, `no dashboard asset "${name}"`, 'route_not_found');
    return send(c, asset.type, asset.body);
  });
  return app;
}
