import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createApiKey, generateKey } from '../../registry/auth.ts';
import { RegistryClient } from '../../registry/client.ts';
import { importLocalModel, publishFolder } from '../../registry/local.ts';
import { openLocalRegistry } from '../edge/server-node.ts';
import { PHASES, TIMING_HEADER } from '../edge/generation/timing.ts';
import type { AdapterRef } from '../protocol/compute.ts';
import { announced, start } from './chaos.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const FIXTURE = join(ROOT, 'test/fixtures/stories260k');
const PROMPT = 'Once upon a time';
/** Added time to first token (issue #24): the Node edge's, and the Worker's (p50 only). */
interface AddedTarget {
  p50: number;
  p90?: number;
}
const NODE_TARGET: AddedTarget = { p50: 2, p90: 5 };

/** One kind of request: the model string sent to the edge, and the adapter the node is sent directly. */
export interface Scenario {
  name: string;
  key: string;
  model: string;
  adapter: AdapterRef | null;
  /** The experiment unit (`user`): one per scenario, so a request in an experiment keeps its arm. */
  user?: string;
  /** A yardstick, not the edge (the bare proxy): reported without a target. */
  yardstick?: boolean;
}

const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
};
const ms = (x: number) => Number(x.toFixed(2));

/**
 * `versa bench edge`: a compute node (stories260k) and the Node edge in front of it, each its own
 * process on 127.0.0.1. The same one-token generation goes straight to the node and through the
 * edge, alternating which goes first, for the base, an adapter by alias and a bare adapter in a
 * running experiment; reports time to first token and the paired differences (what the edge adds),
 * p50/p90, and the means and medians of the edge's Server-Timing phases; with `worker`, the same
 * for the Worker on wrangler's local runtime (edge-worker.ts).
 */
export async function benchEdge(opts: { log: (line: string) => void; pairs?: number; worker?: boolean }) {
  if (opts.worker) return (await import('./edge-worker.ts')).benchEdgeWorker(opts);
  const pairs = opts.pairs ?? 100;
  const dir = mkdtempSync(join(tmpdir(), 'versa-bench-edge-'));
  const children: ChildProcess[] = [];
  try {
    const home = join(dir, 'home');
    const key = generateKey();
    const { registry } = openLocalRegistry(home);
    await importLocalModel(registry, { path: join(FIXTURE, 'model.bin'), name: 'stories260k' });
    // An operator key per scenario (Server-Timing is for operators), each under its own rate limit.
    const scenarioKeys = [generateKey(), generateKey(), generateKey()];
    for (const [i, k] of scenarioKeys.entries())
      await createApiKey(registry, { tenant: 'default', name: `bench-${i}`, scopes: ['operator'], key: k });
    registry.close();
    mkdirSync(join(home, 'blobs'), { recursive: true }); // the node reads adapter files from it

    opts.log('starting a compute node and the edge, each its own process');
    const token = randomBytes(24).toString('base64url');
    const env = { ...process.env, VERSA_COMPUTE_TOKEN: token };
    const node = await start(
      [
        'compute',
        '--model',
        join(FIXTURE, 'model.bin'),
        '--blobs',
        join(home, 'blobs'),
        '--threads',
        '1',
        '--port',
        '0',
      ],
      env,
    );
    children.push(node.child);
    const edge = await start(['edge', '--port', '0', '--home', home], {
      ...env,
      VERSA_API_KEY: key,
      COMPUTE_NODES: JSON.stringify({ stories260k: [node.url] }),
    });
    children.push(edge.child);

    const client = new RegistryClient({ url: edge.url, key });
    const fixtures = { alias: 'vlm-max', experiment: 'lora-max' };
    for (const name of Object.values(fixtures))
      await publishFolder(client, join(FIXTURE, 'adapters', name), name, {
        base: 'stories260k@1',
        alias: 'production',
      });
    await client.json('POST', '/v1/experiments', {
      name: 'bench-edge',
      adapter: fixtures.experiment,
      status: 'running',
      arms: [
        { name: 'control', version: 1, weight: 50 },
        { name: 'candidate', version: 1, weight: 50 },
      ],
    });
    // The floor of any second hop here: a bare node:http proxy process in front of the same node.
    const proxy = await startBareProxy(node.url);
    children.push(proxy.child);
    const scenarios: Scenario[] = [
      { name: 'base', key: scenarioKeys[0], model: 'stories260k', adapter: null },
      {
        name: 'adapter_by_alias',
        key: scenarioKeys[1],
        model: fixtures.alias,
        adapter: await adapterRef(client, fixtures.alias),
      },
      {
        name: 'experiment',
        key: scenarioKeys[2],
        model: fixtures.experiment,
        adapter: await adapterRef(client, fixtures.experiment),
        user: 'bench-unit',
      },
      { name: 'bare_proxy', key: '', model: 'stories260k', adapter: null, yardstick: true },
    ];

    const cpu = { edge: cpuMs(edge.child.pid), bare_proxy: cpuMs(proxy.child.pid) };
    const figures = await pairsOf(
      scenarios,
      (s) => nodeTtft(node.url, token, s.adapter),
      (s) => (s.yardstick ? proxyTtft(proxy.url, token) : edgeTtft(edge.url, s)),
      pairs,
      opts.log,
    );
    // Each process's CPU time per request it served (warm-up included), event writes and all: a
    // figure the machine's noise moves far less than latency.
    const served = { edge: (WARM_UP + pairs) * (scenarios.length - 1), bare_proxy: WARM_UP + pairs };
    const perRequest = (before: number | undefined, pid: number | undefined, requests: number) => {
      const after = cpuMs(pid);
      return before === undefined || after === undefined ? null : ms((after - before) / requests);
    };
    return {
      ...figures,
      edge_cpu_ms_per_request: perRequest(cpu.edge, edge.child.pid, served.edge),
      bare_proxy_cpu_ms_per_request: perRequest(cpu.bare_proxy, proxy.child.pid, served.bare_proxy),
    };
  } finally {
    for (const child of children) child.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
}

type Phases = Record<string, number>;

/** Rounds of every scenario before the measured pairs. */
const WARM_UP = 5;

/** The CPU time (ms) a process has used so far, all its threads (Linux's /proc); undefined elsewhere. */
function cpuMs(pid: number | undefined): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // from field 3 (state) on
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS; // utime + stime
  } catch {
    return undefined;
  }
}
/** The kernel's clock ticks per second (USER_HZ): 100 on Linux's common builds. */
const CLOCK_TICKS = 100;

/**
 * The same generation straight to the node and through the edge, `pairs` times per scenario,
 * alternating which goes first (after a warm-up): times to first token, the paired differences
 * (what the edge adds) and where they go, per scenario; with the edge's D1 round trips per request
 * when it reports them (the Worker's switch).
 */
export async function pairsOf(
  scenarios: Scenario[],
  direct: (s: Scenario) => Promise<number>,
  through: (s: Scenario) => Promise<EdgeTtft>,
  pairs: number,
  log: (line: string) => void,
  target: AddedTarget = NODE_TARGET,
) {
  log('warming up');
  for (let i = 0; i < WARM_UP; i++) {
    for (const s of scenarios) {
      await direct(s);
      await through(s);
    }
  }

  log(`${pairs} pairs per scenario, alternating which goes first`);
  const nodeTimes: number[] = [];
  const runs = scenarios.map(() => ({
    edge: [] as number[],
    added: [] as number[],
    phases: [] as Phases[],
    queries: [] as number[],
  }));
  for (let i = 0; i < pairs; i++) {
    for (const [j, s] of scenarios.entries()) {
      let viaNode: number;
      let viaEdge: EdgeTtft;
      if ((i + j) % 2 === 0) {
        viaNode = await direct(s);
        viaEdge = await through(s);
      } else {
        viaEdge = await through(s);
        viaNode = await direct(s);
      }
      nodeTimes.push(viaNode);
      runs[j].edge.push(viaEdge.ttft);
      runs[j].added.push(viaEdge.ttft - viaNode);
      runs[j].phases.push({ ...viaEdge.phases, ...hop(viaEdge, viaNode) });
      if (viaEdge.queries !== undefined) runs[j].queries.push(viaEdge.queries);
    }
  }

  const figures: Record<string, unknown> = {
    pairs,
    node_ttft_ms: { p50: ms(quantile(nodeTimes, 0.5)), p90: ms(quantile(nodeTimes, 0.9)) },
  };
  const targets: Record<string, { target: string; met: boolean }> = {};
  for (const [j, s] of scenarios.entries()) {
    const r = runs[j];
    const added = { p50: ms(quantile(r.added, 0.5)), p90: ms(quantile(r.added, 0.9)) };
    figures[`${s.name}_edge_ttft_ms`] = { p50: ms(quantile(r.edge, 0.5)), p90: ms(quantile(r.edge, 0.9)) };
    figures[`${s.name}_added_ms`] = added;
    if (s.yardstick) continue;
    figures[`${s.name}_phases_mean_ms`] = meanPhases(r.phases);
    figures[`${s.name}_phases_p50_ms`] = medianPhases(r.phases);
    targets[`${s.name}_added_ms`] = {
      target: `p50 <= ${target.p50} ms${target.p90 === undefined ? '' : `, p90 <= ${target.p90} ms`}`,
      met: added.p50 <= target.p50 && added.p90 <= (target.p90 ?? Infinity),
    };
    if (r.queries.length) {
      const mean = ms(r.queries.reduce((a, b) => a + b, 0) / r.queries.length);
      figures[`${s.name}_d1_queries_per_request`] = { mean, max: Math.max(...r.queries) };
      targets[`${s.name}_d1_queries_per_request`] = { target: 'at most 1', met: Math.max(...r.queries) <= 1 };
    }
  }
  return { ...figures, targets };
}

/** The adapter's version 1 as the edge sends it to a node (ids and digests; the node reads the files). */
export async function adapterRef(client: RegistryClient, name: string): Promise<AdapterRef> {
  const v = await client.json<{ sha256: string; files: AdapterRef['files'] }>('GET', `/v1/adapters/${name}/versions/1`);
  return {
    id: `${name}@1`,
    sha256: v.sha256,
    files: v.files.map(({ name, sha256, bytes }) => ({ name, sha256, bytes })),
  };
}

/** Time to the first token straight from the node (its NDJSON stream). */
export async function nodeTtft(url: string, token: string, adapter: AdapterRef | null): Promise<number> {
  const t = performance.now();
  const res = await fetch(`${url}/v1/internal/generate`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ adapter, prompt: PROMPT, max_tokens: 1, temperature: 0 }),
  });
  return firstArrival(res, '"type":"token"', t, 'the node');
}

/**
 * A bare reverse proxy, the least a second process on the path can cost: node:http in and out on
 * keep-alive connections, the request and the answer piped through, nothing read or checked.
 */
const BARE_PROXY = `
import http from 'node:http';
const target = new URL(process.argv[1]);
const agent = new http.Agent({ keepAlive: true });
const server = http.createServer((req, res) => {
  const { method, headers, url: path } = req;
  const options = { host: target.hostname, port: target.port, path, method, headers, agent };
  const up = http.request(options, (answer) => {
    res.writeHead(answer.statusCode, answer.headers);
    answer.pipe(res);
  });
  up.on('error', () => res.destroy());
  req.pipe(up);
});
server.listen(0, '127.0.0.1', () => console.log('http://127.0.0.1:' + server.address().port));
`;

function startBareProxy(target: string): Promise<{ url: string; child: ChildProcess }> {
  const args = ['--input-type=module', '-e', BARE_PROXY, target];
  return announced(spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] }), 'the bare proxy');
}

/** Time to the first token through the bare proxy (the node's own request and stream). */
async function proxyTtft(url: string, token: string): Promise<EdgeTtft> {
  const t = performance.now();
  const res = await fetch(`${url}/v1/internal/generate`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ adapter: null, prompt: PROMPT, max_tokens: 1, temperature: 0 }),
  });
  const headers = performance.now() - t;
  return { ttft: await firstArrival(res, '"type":"token"', t, 'the bare proxy'), headers, phases: {} };
}

export interface EdgeTtft {
  ttft: number;
  /** When the response's headers arrived (ms since the request was sent). */
  headers: number;
  phases: Phases;
  /** The D1 round trips before the headers, where the edge counts them (the Worker's VERSA_COUNT_D1). */
  queries?: number;
}

/** Time to the first token through the edge (its SSE stream), with the edge's Server-Timing phases. */
export async function edgeTtft(url: string, s: Scenario): Promise<EdgeTtft> {
  const t = performance.now();
  const res = await fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${s.key}`, 'content-type': 'application/json', [TIMING_HEADER]: '1' },
    body: JSON.stringify({ model: s.model, prompt: PROMPT, max_tokens: 1, temperature: 0, stream: true, user: s.user }),
  });
  const headers = performance.now() - t;
  const ttft = await firstArrival(res, '"text":', t, 'the edge');
  const queries = res.headers.get('x-versa-d1-queries');
  return {
    ttft,
    headers,
    phases: parseServerTiming(res.headers.get('server-timing') ?? ''),
    queries: queries === null ? undefined : Number(queries),
  };
}

/**
 * The second hop's share of one pair, beside the edge's own phases: node_wait (the edge's wait on
 * the node less the client's own on it, straight, in the same pair: the edge's fetch against the
 * client's), http (the client's wait for the headers less the edge's total: the request's and the
 * headers' way through HTTP on both sides) and first_chunk (from the headers to the first token's
 * chunk at the client: the stream's encoding and writes).
 */
function hop(viaEdge: EdgeTtft, viaNode: number): Phases {
  const { node, total } = viaEdge.phases;
  return {
    node_wait: node === undefined ? NaN : node - viaNode,
    http: total === undefined ? NaN : viaEdge.headers - total,
    first_chunk: viaEdge.ttft - viaEdge.headers,
  };
}

/** Reads a stream to its end; returns when `marker` first arrived (ms since `t`), or throws. */
async function firstArrival(res: Response, marker: string, t: number, who: string): Promise<number> {
  let first = 0;
  let text = '';
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  for (let r = await reader.read(); !r.done; r = await reader.read()) {
    text += r.value;
    if (!first && text.includes(marker)) first = performance.now() - t;
  }
  if (!res.ok || !first) throw new Error(`${who} answered ${res.status} without a token: ${text.slice(0, 300)}`);
  return first;
}

function parseServerTiming(header: string): Phases {
  const phases: Phases = {};
  for (const entry of header.split(',')) {
    const m = /^\s*([a-z]+);dur=([\d.]+)/.exec(entry);
    if (m) phases[m[1]] = Number(m[2]);
  }
  return phases;
}

const PARTS = [...PHASES, 'edge', 'total', 'node_wait', 'http', 'first_chunk'];

/** Each phase's mean over the requests (0 where a request had none of it: e.g. a template outside chat). */
function meanPhases(all: Phases[]): Phases {
  const names = PARTS.filter((p) => all.some((x) => p in x));
  return Object.fromEntries(names.map((p) => [p, ms(all.reduce((sum, x) => sum + (x[p] ?? 0), 0) / all.length)]));
}

/** Each phase's median over the requests (the means carry the busy machine's outliers). */
function medianPhases(all: Phases[]): Phases {
  const names = PARTS.filter((p) => all.some((x) => p in x));
  return Object.fromEntries(
    names.map((p) => [
      p,
      ms(
        quantile(
          all.map((x) => x[p] ?? 0),
          0.5,
        ),
      ),
    ]),
  );
}
