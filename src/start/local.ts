import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { RegistryClient } from '../../registry/client.ts';
import { describeLocalModel, importLocalModel, publishFolder } from '../../registry/local.ts';
import { manifestDigest } from '../../registry/digest.ts';
import { getBaseModel, getBaseVersion, listBaseModels } from '../../registry/queries/models.ts';
import { listAdapters } from '../../registry/queries/adapters.ts';
import { getRunningExperiment } from '../experiments/store.ts';
import { formatRef } from '../../registry/names.ts';
import type { SqliteRegistry } from '../../registry/db/sqlite.ts';
import { assertPortFree, portSetting } from '../http/listen.ts';
import { startComputeNode, type ComputeNode } from '../compute/node.ts';
import { openLocalRegistry, startNodeServer, type NodeServer } from '../edge/server-node.ts';
import { runtimeOf, type EngineRuntime } from '../engine/runtime-options.ts';
import { weightCacheFromEnv } from '../engine/weights/cache.ts';
import { DEMO, ensureDemoFiles } from './demo.ts';
import { checkedApiKey, localKey } from './home.ts';

/** A base model `versa start` serves: its files and its registry name. */
export interface LocalBase {
  /** Hugging Face folder or llama2.c .bin. */
  model: string;
  tokenizer?: string;
  /** The base model's name in the registry. */
  name: string;
}

export interface LocalOptions extends EngineRuntime {
  /** Default: env PORT, else 8787 (0 picks a free port). */
  port?: number;
  /** Default: env VERSA_HOME, else ./.versa */
  home?: string;
  /** Default: env VERSA_API_KEY, else the key kept in <home>/admin-key (made on first start). */
  apiKey?: string;
  /** Real base models to serve, one compute node each; default (none): the offline demo. */
  bases?: LocalBase[];
  /** Register a base's files as a new version of its name when the name is registered with other weights. */
  newVersion?: boolean;
  /** Port of the first compute node, the next ones on the ports after it (default: any free port). */
  computePort?: number;
  log?: (line: string) => void;
}

export interface Local {
  url: string;
  apiKey: string;
  /** The served bases, `NAME@VERSION`, in the order given. */
  bases: string[];
  edge: NodeServer;
  /** One compute node per base, in the same order. */
  computes: ComputeNode[];
  banner: string;
  close(): Promise<void>;
}

/**
 * `npm start`: the whole product on this machine, in one process. The registry (SQLite + a blob
 * folder under VERSA_HOME, migrations applied), one compute node per base model, and the edge on
 * Node, routing each base to its node. On first start without bases it seeds a demo: base model,
 * two adapters, a production alias and a running experiment.
 */
export async function startLocal(o: LocalOptions = {}): Promise<Local> {
  const log = o.log ?? (() => {});
  // Settings that can be wrong are checked before anything slow (hashing, loading the model) happens.
  checkedBases(o.bases ?? []);
  const port = o.port ?? portSetting(process.env.PORT, 'PORT', 8787);
  const givenKey = o.apiKey ?? checkedApiKey();
  await assertPortFree(port, '127.0.0.1');
  const count = Math.max(o.bases?.length ?? 0, 1);
  if (o.computePort) for (let i = 0; i < count; i++) await assertPortFree(o.computePort + i, '127.0.0.1');
  const home = resolve(o.home ?? process.env.VERSA_HOME ?? '.versa');
  mkdirSync(home, { recursive: true });
  const apiKey = givenKey ?? localKey(home);

  const demo = o.bases?.length ? undefined : ensureDemoFiles(home);
  const bases: LocalBase[] = demo ? [{ model: demo.model, tokenizer: demo.tokenizer, name: DEMO.base }] : o.bases!;

  // Register the bases before the edge starts, so that their compute nodes are known to the router.
  const { registry, blobs } = openLocalRegistry(home);
  const fresh = (await listBaseModels(registry.db)).length === 0;
  const versions: number[] = [];
  try {
    for (const b of bases) versions.push(await registerBase(registry, { ...b, newVersion: o.newVersion, log }));
  } finally {
    registry.close();
  }

  const computeToken = randomBytes(32).toString('base64url'); // this run's own: the nodes are private to it
  const computes: ComputeNode[] = [];
  try {
    for (const [i, b] of bases.entries()) {
      log(`starting the compute node of ${b.name}@${versions[i]}`);
      computes.push(
        await startComputeNode({
          token: computeToken,
          model: b.model,
          tokenizer: b.tokenizer,
          base: { name: b.name, version: versions[i] },
          digestCache: join(home, 'digests'), // a restart does not read the weights again to know their sha256
          port: o.computePort ? o.computePort + i : 0,
          ...runtimeOf(o),
          weightCache: weightCacheFromEnv({ ...process.env, VERSA_HOME: home }), // converted weights, at disk speed
          blobs,
          log,
        }),
      );
    }
  } catch (e) {
    await Promise.all(computes.map((c) => c.shutdown(0)));
    throw e;
  }
  const nodes = Object.fromEntries(bases.map((b, i) => [b.name, [computes[i].url]]));
  const edge = await startNodeServer({ port, home, apiKey, deps: { generation: { nodes, computeToken } } });

  if (demo && fresh) await seedDemo(new RegistryClient({ url: edge.url, key: apiKey }), demo);

  const served = bases.map((b, i) => formatRef(b.name, versions[i]));
  const banner = bannerText({
    url: edge.url,
    key: apiKey,
    bases: served,
    demo: !!demo,
    adapters: await adapterLines(edge, bases),
  });
  return {
    url: edge.url,
    apiKey,
    bases: served,
    edge,
    computes,
    banner,
    close: async () => {
      await edge.close();
      await Promise.all(computes.map((c) => c.shutdown(5000)));
    },
  };
}

/** Every base needs its name, given once (the edge routes by name). */
function checkedBases(bases: LocalBase[]): void {
  const seen = new Set<string>();
  for (const b of bases) {
    if (!b.name) throw new Error(`--model needs --name: the name the base model gets in the registry (${b.model})`);
    if (seen.has(b.name)) throw new Error(`--name ${b.name} is given to two models: each base needs its own name`);
    seen.add(b.name);
  }
}

/**
 * Registers the served model under `name` the first time. Later starts compare its files' digest with
 * the latest version's: serving other weights under a registered name would give its adapters a base
 * they were not trained on, so that needs `newVersion` (a new version of the name). Returns the
 * version these files are.
 */
async function registerBase(
  registry: SqliteRegistry,
  o: LocalBase & { newVersion?: boolean; log: (line: string) => void },
): Promise<number> {
  if (!(await getBaseModel(registry.db, o.name))) {
    o.log(`registering ${o.name} from ${o.model}`);
    return (await importLocalModel(registry, { path: o.model, name: o.name, tokenizer: o.tokenizer })).version;
  }
  const latest = await getBaseVersion(registry.db, o.name);
  const local = await describeLocalModel(o.model, { tokenizer: o.tokenizer });
  if (latest && latest.sha256 === (await manifestDigest(local.files))) return latest.version;
  if (!o.newVersion)
    throw new Error(
      `base model "${o.name}" is registered with other weights than ${o.model}` +
        (latest ? ` (${o.name}@${latest.version} is sha256 ${latest.sha256.slice(0, 12)}…)` : '') +
        ': pass --new-version to register them as its next version, or choose another --name',
    );
  const added = await importLocalModel(registry, { path: o.model, name: o.name, tokenizer: o.tokenizer });
  o.log(`registered ${o.model} as ${o.name}@${added.version}`);
  return added.version;
}

/** The demo's adapters, versions, alias and experiment. */
async function seedDemo(client: RegistryClient, demo: ReturnType<typeof ensureDemoFiles>): Promise<void> {
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
  await client.json('POST', '/v1/experiments', {
    name: `${DEMO.writer}: v2 against v1`,
    adapter: DEMO.writer,
    status: 'running',
    arms: [
      { name: 'control', version: 1, weight: 50 },
      { name: 'candidate', version: 2, weight: 50 },
    ],
  });
}

const BANNER_ADAPTERS = 6;

/**
 * The adapters on the served bases as the registry has them now (not as the demo seeded them):
 * `NAME (v1 = production, v2 = staging, A/B experiment exp_... running)`, the first few by name.
 */
async function adapterLines(edge: NodeServer, bases: LocalBase[]): Promise<string[]> {
  const lines: string[] = [];
  for (const b of bases) {
    const page = await listAdapters(edge.registry.db, null, { base: b.name, limit: BANNER_ADAPTERS });
    for (const a of page.data) {
      const byVersion = new Map<number, string[]>();
      for (const [alias, version] of Object.entries(a.aliases).sort(([x], [y]) => x.localeCompare(y)))
        byVersion.set(version, [...(byVersion.get(version) ?? []), alias]);
      const facts = [...byVersion].sort(([x], [y]) => x - y).map(([v, names]) => `v${v} = ${names.join(', ')}`);
      const experiment = await getRunningExperiment(edge.registry.db, a);
      if (experiment) facts.push(`A/B experiment ${experiment.id} running`);
      lines.push(facts.length ? `${a.name} (${facts.join(', ')})` : a.name);
    }
    if (page.nextCursor) lines.push(`more on ${b.name}: GET /v1/adapters?base=${b.name}`);
  }
  return lines;
}

/** A banner line's label, on the first line of its group only. */
const label = (name: string, i: number) => (i ? '' : name).padEnd(11);

function bannerText(o: { url: string; key: string; bases: string[]; demo: boolean; adapters: string[] }): string {
  const { url, key } = o;
  const model = o.demo ? DEMO.writer : o.bases[0].split('@')[0];
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
    ...o.bases.map(
      (b, i) => `  ${label(o.bases.length > 1 ? 'bases' : 'base', i)}${b}${o.demo ? ` (${DEMO.note})` : ''}`,
    ),
    ...o.adapters.map((a, i) => `  ${label('adapters', i)}${a}`),
    `  API docs   ${url}/openapi.json`,
    '',
    'Stream tokens:',
    `  curl -N ${url}/v1/chat/completions -H 'Authorization: Bearer ${key}' ` +
      `-H 'Content-Type: application/json' -d '${body}'`,
    '',
  ].join('\n');
}
