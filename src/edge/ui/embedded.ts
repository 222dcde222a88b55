// The dashboard's bundle, as text in the Worker: wrangler's module rules (wrangler.toml [[rules]],
// type Text) import dist/ui/'s files as strings when it bundles the Worker. Worker-only: under Node
// these imports would run the browser code (the Node edge reads the folder, src/edge/server-node.ts).
import appJs from '../../../dist/ui/app.js';
import stylesCss from '../../../dist/ui/styles.css';
import type { UiAssets } from './routes.ts';

const FILES: Readonly<Record<string, string>> = { 'app.js': appJs, 'styles.css': stylesCss };

/** The files by name, as the Node edge's folder answers them (routes.ts asks for fixed names only). */
export const embeddedDashboard: UiAssets = {
  fetch: async (url) => {
    const text = FILES[new URL(url).pathname.slice(1)];
    return text === undefined ? new Response(null, { status: 404 }) : new Response(text);
  },
};
