import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { RegistryClient } from '../../registry/client.ts';
import { describeLocalModel, importLocalModel, publishFolder } from '../../registry/local.ts';
import { manifestDigest } from '../../registry/digest.ts';
import { getBaseModel, getBaseVersion, listBaseModels } from '../../registry/queries/models.ts';
import type { SqliteRegistry } from '../../registry/db/sqlite.ts';
import { assertPortFree, portSetting } from '../http/listen.ts';
import { startComputeNode, type ComputeNode } from '../compute/node.ts';
import { openLocalRegistry, startNodeServer, type NodeServer } from '../edge/node.ts';
import { runtimeOf, type EngineRuntime } from '../engine/runtime-options.ts';
import { DEMO, ensureDemoFiles } from './demo.ts';
import { checkedApiKey, localKey } from './home.ts';

export interface LocalOptions extends EngineRuntime {
  /** Default: env PORT, else 8787 (0 picks a free port). */
  port?: number;
  /** Default: env VERSA_HOME, else ./.versa */
  home?: string;
  /** Default: env VERSA_API_KEY, else the key kept in <home>/admin-key (made on first start). */
  apiKey?: string;
  /** A real base model to serve (Hugging Face folder or llama2.c .bin); default: the offline demo. */
  model?: string;
  tokenizer?: string;
  /** Registry name of --model (required with it). */
  name?: string;
  /** Register --model as a new version of `name` when `name` is registered with other weights. */
  newVersion?: boolean;
  computePort?: number;
  log?: (line: string) => void;
}

export interface Local {
  url: string;
  apiKey: string;
  base: string;
  edge: NodeServer;
  compute: ComputeNode;
  banner: string;
  close(): Promise<void>;
}

/**
 * `npm start`: the whole product on this machine, in one process. The registry (SQLite + a blob
 * folder under VERSA_HOME, migrations applied), one compute node, and the edge on Node. On first
 * start without --model it seeds a demo: base model, two adapters, a production alias and a
 * running experiment.
 */
export async function startLocal(o: LocalOptions = {}): Promise<Local> {
  const log = o.log ?? (() => {});
  if (o.model && !o.name) throw new Error('--model needs --name: the name the base model gets in the registry');
  // Settings that can be wrong are checked before anything slow (hashing, loading the model) happens.
  const port = o.port ?? portSetting(process.env.PORT, 'PORT', 8787);
  const givenKey = o.apiKey ?? checkedApiKey();
  await assertPortFree(port, '127.0.0.1');
  if (o.computePort) await assertPortFree(o.computePort, '127.0.0.1');
  const home = resolve(o.home ?? process.env.VERSA_HOME ?? '.versa');
  mkdirSync(home, { recursive: true });
  const apiKey = givenKey ?? localKey(home);

  const demo = o.model ? undefined : ensureDemoFiles(home);
  const model = o.model ?? demo!.model;
  const tokenizer = o.tokenizer ?? demo?.tokenizer;
  const base = o.name ?? DEMO.base;

  // Register the base before the edge starts, so that its compute node is known to the router.
  const { registry, blobs } = openLocalRegistry(home);
  const fresh = (await listBaseModels(registry.db)).length === 0;
  try {
    await registerBase(registry, { model, tokenizer, name: base, newVersion: o.newVersion, log });
  } finally {
    registry.close();
  }

  log('starting the compute node');
  const computeToken = randomBytes(32).toString('base64url'); // this run's own: the node is private to it
  const compute = await startComputeNode({
    token: computeToken,
    model,
    tokenizer,
    port: o.computePort ?? 0,
    ...runtimeOf(o),
    blobs,
    log,
  });
  const edge = await startNodeServer({
    port,
    home,
    apiKey,
    deps: { generation: { nodes: { [base]: [compute.url] }, computeToken } },
  });

  let seeded = '';
  if (demo && fresh) seeded = await seedDemo(new RegistryClient({ url: edge.url, key: apiKey }), demo);

  const banner = bannerText(edge.url, apiKey, base, !!demo, seeded);
  return {
    url: edge.url,
    apiKey,
    base,
    edge,
    compute,
    banner,
    close: async () => {
      await edge.close();
      await compute.shutdown(5000);
    },
  };
}

/**
 * Registers the served model under `name` the first time. Later starts compare its files' digest with
 * the latest version's: serving other weights under a registered name would give its adapters a base
 * they were not trained on, so that needs `newVersion` (a new version of the name).
 */
async function registerBase(
  registry: SqliteRegistry,
  o: { model: string; tokenizer?: string; name: string; newVersion?: boolean; log: (line: string) => void },
): Promise<void> {
  if (!(await getBaseModel(registry.db, o.name))) {
    o.log(`registering ${o.name} from ${o.model}`);
    await importLocalModel(registry, { path: o.model, name: o.name, tokenizer: o.tokenizer });
    return;
  }
  const latest = await getBaseVersion(registry.db, o.name);
  const local = await describeLocalModel(o.model, { tokenizer: o.tokenizer });
  if (latest && latest.sha256 === (await manifestDigest(local.files))) return;
  if (!o.newVersion)
    throw new Error(
      `base model "${o.name}" is registered with other weights than ${o.model}` +
        (latest ? ` (${o.name}@${latest.version} is sha256 ${latest.sha256.slice(0, 12)}…)` : '') +
        ': pass --new-version to register them as its next version, or choose another --name',
    );
  const added = await importLocalModel(registry, { path: o.model, name: o.name, tokenizer: o.tokenizer });
  o.log(`registered ${o.model} as ${o.name}@${added.version}`);
}

/** The demo's adapters, versions, alias and experiment. Returns the experiment id. */
async function seedDemo(client: RegistryClient, demo: ReturnType<typeof ensureDemoFiles>): Promise<string> {
  const base = `${DEMO.base}@1`;
  await publishFolder(client, demo.writerV1, DEMO.writer, {
    base,
    alias: 'production',
    visibility: 'public',
    task: 'storytelling',
    description: `${DEMO.note}`,
  });
  await publishFolder(client, demo.writerV2, DEMO.writer, { base, alias: 'staging' });
  await publishFolder(client, demo.critic, DEMO.critic, {
    base,
    alias: 'production',
    task: 'critique',
    description: DEMO.note,
  });
  const experiment = await client.json('POST', '/v1/experiments', {
    name: `${DEMO.writer}: v2 against v1`,
    adapter: DEMO.writer,
    status: 'running',
    arms: [
      { name: 'control', version: 1, weight: 50 },
      { name: 'candidate', version: 2, weight: 50 },
    ],
  });
  return experiment.id;
}

function bannerText(url: string, key: string, base: string, demo: boolean, experiment: string): string {
  const model = demo ? DEMO.writer : base;
  const body = JSON.stringify({
    model,
    messages: [{ role: 'user', content: 'Once upon a time' }],
    stream: true,
    max_tokens: 32,
  });
  return [
    `Versa is running on ${url}`,
    `  dashboard  ${url}/ui#key=${key}`,
    `  API key    ${key}`,
    `  base       ${base}${demo ? ` (${DEMO.note})` : ''}`,
    ...(demo
      ? [
          `  adapters   ${DEMO.writer} (v1 = production, v2 = staging` +
            `${experiment ? `, A/B experiment ${experiment} running` : ''}), ${DEMO.critic}`,
        ]
      : []),
    `  API docs   ${url}/openapi.json`,
    '',
    'Stream tokens:',
    `  curl -N ${url}/v1/chat/completions -H 'Authorization: Bearer ${key}' ` +
      `-H 'Content-Type: application/json' -d '${body}'`,
    '',
  ].join('\n');
}
