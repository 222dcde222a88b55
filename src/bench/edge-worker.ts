import { execFile, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { generateKey } from '../../registry/auth.ts';
import { RegistryClient } from '../../registry/client.ts';
import { describeLocalModel, publishFolder } from '../../registry/local.ts';
import { start } from './chaos.ts';
import { adapterRef, edgeTtft, nodeTtft, pairsOf, type Scenario } from './edge.ts';

// The checkout (the compiled CLI runs from dist/<hash>/, whose root files link back to it).
const ROOT = dirname(realpathSync(resolve(import.meta.dirname, '../../package.json')));
const FIXTURE = join(ROOT, 'test/fixtures/stories260k');

/**
 * `versa bench edge --worker`: the Worker (src/edge/server-worker.ts, bundled by wrangler and run by
 * workerd, wrangler's local runtime, on local D1 and R2) in front of a compute node, each its own
 * process on 127.0.0.1: the same pairs as the Node edge's, plus the D1 round trips each request
 * made before its first token (the Worker's VERSA_COUNT_D1 switch). Needs wrangler (a dev dependency).
 * Each kind of request goes through `wrangler dev`'s address, whose proxy worker (for live reload;
 * not there on Cloudflare) hands it on to the Worker, and also straight to the Worker in workerd
 * (`_workerd` scenarios).
 */
export async function benchEdgeWorker(opts: { log: (line: string) => void; pairs?: number }) {
  const pairs = opts.pairs ?? 100;
  const dir = mkdtempSync(join(tmpdir(), 'versa-bench-worker-'));
  const children: ChildProcess[] = [];
  let worker: { dispose(): Promise<void> } | undefined;
  try {
    const env = { ...process.env, CLOUDFLARE_CF_FETCH_ENABLED: 'false', WRANGLER_SEND_METRICS: 'false' };
    Object.assign(process.env, { CLOUDFLARE_CF_FETCH_ENABLED: 'false', WRANGLER_SEND_METRICS: 'false' }); // offline
    opts.log('applying the migrations to a local D1 database');
    const wrangler = join(ROOT, 'node_modules/wrangler/bin/wrangler.js');
    const migrate = ['d1', 'migrations', 'apply', 'DB', '--local', '--persist-to', dir];
    await promisify(execFile)(process.execPath, [wrangler, ...migrate], { cwd: ROOT, env: { ...env, CI: 'true' } });

    opts.log('starting the Worker (workerd) and a compute node, each its own process');
    const key = generateKey();
    const token = randomBytes(24).toString('base64url');
    const nodePort = await freePort();
    const vars = {
      VERSA_API_KEY: key, // an operator key: Server-Timing is shown to it
      COMPUTE_NODES: JSON.stringify([`http://127.0.0.1:${nodePort}`]),
      VERSA_COMPUTE_TOKEN: token,
      VERSA_COUNT_D1: '1',
      RATE_LIMIT_PER_MINUTE: '0',
    };
    const { unstable_startWorker, unstable_DevEnv } = await import('wrangler');
    const ownUrl = workerdUrl(unstable_DevEnv);
    const started = await unstable_startWorker({
      config: join(ROOT, 'wrangler.toml'),
      // No custom build (dist/ui/ is built at npm install): its watcher would restart the Worker mid-run.
      build: { custom: { command: '' } },
      bindings: Object.fromEntries(Object.entries(vars).map(([k, value]) => [k, { type: 'plain_text', value }])),
      dev: {
        persist: dir,
        server: { hostname: '127.0.0.1', port: 0 },
        inspector: false,
        watch: false,
        logLevel: 'error',
      },
    });
    worker = started;
    await started.ready;
    const url = (await started.url).origin;
    const direct = await Promise.race([
      ownUrl,
      new Promise<never>((_, fail) =>
        setTimeout(() => fail(new Error('wrangler never said where workerd serves the Worker')), 10_000).unref(),
      ),
    ]);
    const client = new RegistryClient({ url, key });
    const readKey = await client.json<{ key: string }>('POST', '/v1/keys', {
      tenant: 'default',
      name: 'compute',
      scopes: ['read'],
    });
    const model = join(FIXTURE, 'model.bin');
    const node = await start(
      ['compute', '--model', model, '--threads', '1', '--port', String(nodePort), '--registry', url],
      { ...env, VERSA_COMPUTE_TOKEN: token, VERSA_REGISTRY_KEY: readKey.key },
    );
    children.push(node.child);
    await client.json('POST', '/v1/models/stories260k/versions', await describeLocalModel(model));
    for (const name of ['vlm-max', 'lora-max'])
      await publishFolder(client, join(FIXTURE, 'adapters', name), name, {
        base: 'stories260k@1',
        alias: 'production',
      });
    await client.json('POST', '/v1/experiments', {
      name: 'bench-edge',
      adapter: 'lora-max',
      status: 'running',
      arms: [
        { name: 'control', version: 1, weight: 50 },
        { name: 'candidate', version: 1, weight: 50 },
      ],
    });
    const kinds: Scenario[] = [
      { name: 'base', key, model: 'stories260k', adapter: null },
      { name: 'adapter_by_alias', key, model: 'vlm-max', adapter: await adapterRef(client, 'vlm-max') },
      {
        name: 'experiment',
        key,
        model: 'lora-max',
        adapter: await adapterRef(client, 'lora-max'),
        user: 'bench-unit',
      },
    ];
    const scenarios = [
      ...kinds,
      ...kinds.map((s) => ({ ...s, name: `${s.name}_workerd`, user: s.user && `${s.user}-2` })),
    ];
    const figures = await pairsOf(
      scenarios,
      (s) => nodeTtft(node.url, token, s.adapter),
      (s) => edgeTtft(s.name.endsWith('_workerd') ? direct : url, s),
      pairs,
      opts.log,
      { p50: 5 },
    );
    return { runtime: 'workerd (wrangler local runtime, local D1)', ...figures };
  } finally {
    for (const child of children) child.kill('SIGTERM');
    await worker?.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Where workerd itself serves the Worker, behind `wrangler dev`'s proxy worker: wrangler tells its
 * proxy in a `reloadComplete` event (its DevEnv's message bus), which is listened to here once.
 */
function workerdUrl(DevEnv: { prototype: { dispatch(event: unknown): void } }): Promise<string> {
  const dispatch = DevEnv.prototype.dispatch;
  return new Promise((resolve) => {
    DevEnv.prototype.dispatch = function (this: unknown, event) {
      const e = event as {
        type?: string;
        proxyData?: { userWorkerUrl?: { protocol: string; hostname: string; port: string } };
      };
      const own = e.type === 'reloadComplete' ? e.proxyData?.userWorkerUrl : undefined;
      if (own) {
        DevEnv.prototype.dispatch = dispatch;
        resolve(`${own.protocol}//${own.hostname}:${own.port}`);
      }
      return dispatch.call(this, event);
    };
  });
}

/** A port free on 127.0.0.1 now (the node's: the Worker must know it before the node starts). */
async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((done) => probe.listen(0, '127.0.0.1', done));
  const { port } = probe.address() as AddressInfo;
  await new Promise((done) => probe.close(done));
  return port;
}
