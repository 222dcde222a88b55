import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { assertPortFree, portSetting } from '../../http/listen.ts';
import { parse } from '../output.ts';
import { onStopSignal } from '../stop-signals.ts';

interface EdgeOptions {
  port?: number;
  host: string;
  home?: string;
}

export function register(program: Command): void {
  program
    .command('edge')
    .description(
      'run the edge alone (registry, OpenAI-compatible API, dashboard) in front of compute nodes: ' +
        'COMPUTE_NODES=\'["https://node:8788", ...]\' (each serves the base it reports) and VERSA_COMPUTE_TOKEN',
    )
    .option('--port <n>', 'port to listen on (env PORT, default 8787)', parse.int(0))
    .option('--host <addr>', 'address to listen on', '127.0.0.1')
    .option('--home <dir>', 'registry data folder, as `versa start` uses (env VERSA_HOME, default ./.versa)')
    .action(run);
}

async function run(o: EdgeOptions): Promise<void> {
  // Every setting is checked, and the port tried, before anything is opened.
  const port = o.port ?? portSetting(process.env.PORT, 'PORT', 8787);
  const { parseComputeNodes } = await import('../../edge/routing/pools.ts');
  const { nodeSettingsFrom } = await import('../../edge/routing/settings.ts');
  if (!process.env.COMPUTE_NODES?.trim())
    throw new Error("set COMPUTE_NODES to the compute nodes' URLs, e.g. COMPUTE_NODES='[\"http://10.0.0.2:8788\"]'");
  const nodes = parseComputeNodes(process.env);
  const computeToken = process.env.VERSA_COMPUTE_TOKEN?.trim();
  if (!computeToken) throw new Error('set VERSA_COMPUTE_TOKEN to the token the compute nodes were started with');
  const settings = nodeSettingsFrom(process.env);
  const { checkedApiKey, localKey } = await import('../../start/home.ts');
  const givenKey = checkedApiKey();
  await assertPortFree(port, o.host);

  const home = resolve(o.home ?? process.env.VERSA_HOME ?? '.versa');
  mkdirSync(home, { recursive: true });
  const apiKey = givenKey ?? localKey(home);
  const { startNodeServer } = await import('../../edge/server-node.ts');
  const edge = await startNodeServer({
    port,
    hostname: o.host,
    home,
    apiKey,
    deps: { generation: { nodes, computeToken, ...settings } },
  });
  const count = Object.values(nodes).flat().length;
  // Before the announcement: whoever reads it may stop this process at once.
  onStopSignal(() => edge.close());
  process.stdout.write(`${edge.url}\n`);
  process.stderr.write(
    `versa edge: serving ${home} on ${edge.url} in front of ${count} compute node${count === 1 ? '' : 's'}` +
      ` (admin key: ${givenKey ? '$VERSA_API_KEY' : join(home, 'admin-key')})\n`,
  );
}
