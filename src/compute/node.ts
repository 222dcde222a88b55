import { listen } from '../http/listen.ts';
import { EngineClient } from '../engine/worker/client.ts';
import { runtimeOf, type EngineRuntime } from '../engine/runtime-options.ts';
import { AdapterCache } from './adapter-cache.ts';
import type { AdapterRef, NodeBase } from '../protocol/compute.ts';
import { modelSha256 } from '../engine/weights/identity.ts';
import {
  checkReadOnlyKey,
  firstOf,
  registrySource,
  storeSource,
  type BlobReader,
  type BlobSource,
} from './blob-source.ts';
import type { AdapterKind } from '../engine/adapters/format.ts';
import { createComputeApp } from './app.ts';
import { describeBase } from './replies.ts';
import type { ComputeState } from './state.ts';
import { cacheEvents, createMetrics } from './metrics.ts';

export interface ComputeNodeOptions extends EngineRuntime {
  model: string;
  tokenizer?: string;
  port?: number;
  host?: string;
  /** Budget of the adapter cache, in MB. */
  adapterCacheMb?: number;
  /** Adapter kinds served (default both). */
  adapterKinds?: AdapterKind[];
  /** Rows decoded together; requests beyond wait in the engine's queue. */
  maxBatch?: number;
  /** Requests allowed to wait for a row; beyond, 429 with Retry-After. */
  maxQueue?: number;
  /** The token the edge sends (`Authorization: Bearer`); every route but /healthz and /readyz needs it. */
  token: string;
  /** A blob store shared with the registry (its folder on this host). */
  blobs?: BlobReader;
  /** The registry to download adapter files from (its origin), with this node's own read key. */
  registry?: string;
  registryKey?: string;
  /** Adapters to load at start. */
  preload?: AdapterRef[];
  /** Per-request deadline when the request sets none. */
  deadlineMs?: number;
  /** The registry's name (and version) of the base this node serves, reported with its files' sha256. */
  base?: { name?: string; version?: number };
  /** Keeps the sha256 of the weights here, so that a restart does not read them again (by path, size, times). */
  digestCache?: string;
  /** Serve HTTPS with this certificate and key (PEM), so that the token and prompts travel encrypted. */
  tls?: { cert: string | Buffer; key: string | Buffer };
  log?: (line: string) => void;
}

export interface ComputeNode {
  url: string;
  port: number;
  engine: EngineClient;
  state: ComputeState;
  /**
   * Drains: new requests get 503 + Retry-After, running streams finish (cancelled after `timeoutMs`,
   * ending in an error line), then the server closes.
   */
  shutdown(timeoutMs?: number): Promise<void>;
}

/** Starts a compute node: the engine in its worker thread, the adapter cache, and the HTTP server. */
export async function startComputeNode(o: ComputeNodeOptions): Promise<ComputeNode> {
  const log = o.log ?? (() => {});
  checkedToken(o.token);
  // Before minutes of model loading: a key that can write is refused, whatever the registry serves.
  if (o.registry && o.registryKey) await checkReadOnlyKey(o.registry, o.registryKey);
  const maxBatch = o.maxBatch ?? 64;
  // The weights are hashed while the engine loads them: the base's identity, as the registry has it.
  const hashing = modelSha256(o.model, { cacheDir: o.digestCache });
  hashing.catch(() => {}); // awaited below, once the engine is up
  const engine = await EngineClient.start({
    model: o.model,
    tokenizer: o.tokenizer,
    ...runtimeOf(o),
    maxBatch,
    adapterKinds: o.adapterKinds,
  });
  let base: NodeBase;
  try {
    base = { ...o.base, sha256: await hashing };
  } catch (e) {
    await engine.close();
    throw e;
  }
  for (const w of engine.info.warnings) log(`warning: ${w}`);
  const metrics = createMetrics();
  const sources: BlobSource[] = [];
  if (o.blobs) sources.push(storeSource(o.blobs));
  if (o.registry) sources.push(registrySource(o.registry, o.registryKey));
  const cache = new AdapterCache(
    engine,
    firstOf(...sources),
    (o.adapterCacheMb ?? 1024) * 1024 * 1024,
    cacheEvents(metrics),
  );

  let window = { tokens: 0, ms: 0 };
  engine.onStep = (stats, load) => {
    metrics.queueDepth.set(load.queued);
    metrics.activeRows.set(load.active);
    if (stats.decodeRows) metrics.batchSize.observe(stats.decodeRows);
    window = { tokens: window.tokens * 0.9 + stats.generatedTokens, ms: window.ms * 0.9 + stats.ms };
    if (window.ms > 0) metrics.tokensPerSecond.set((window.tokens / window.ms) * 1000);
  };

  const waiters: Array<() => void> = [];
  const state: ComputeState = {
    token: o.token,
    base,
    engine,
    cache,
    metrics,
    capacity: maxBatch + (o.maxQueue ?? 4 * maxBatch),
    inflight: 0,
    draining: false,
    defaultDeadlineMs: o.deadlineMs ?? 10 * 60_000,
    idle: () => (state.inflight === 0 ? Promise.resolve() : new Promise((resolve) => waiters.push(resolve))),
    onSettled: () => {
      if (state.inflight === 0) waiters.splice(0).forEach((w) => w());
    },
  };
  for (const ref of o.preload ?? []) (await cache.acquire(ref)).release();

  const app = createComputeApp(state);
  const { server, port } = await listen(app.fetch, { port: o.port ?? 0, hostname: o.host ?? '127.0.0.1', tls: o.tls });
  const url = `${o.tls ? 'https' : 'http'}://${o.host ?? '127.0.0.1'}:${port}`;
  const { architecture, params, ep, weights, loadSeconds, weightCache } = engine.info;
  const precision = weights.quantize === 'none' ? 'float32' : `${weights.quantize}, block ${weights.block}`;
  const from = weightCache === 'read' ? ' from the weights cache' : '';
  log(
    `compute node on ${url} (${describeBase(base)}, ${architecture}, ${(params / 1e6).toFixed(1)}M params, ` +
      `${precision}, ${ep}, loaded in ${loadSeconds.toFixed(1)} s${from})`,
  );

  let closing: Promise<void> | undefined;
  return {
    url,
    port,
    engine,
    state,
    shutdown(timeoutMs = 30_000) {
      closing ??= (async () => {
        // Until it closes, a draining node answers new requests 503 + Retry-After (and /readyz 503),
        // so callers fail over at once instead of meeting a refused connection.
        state.draining = true;
        const timer = setTimeout(() => {
          log('shutdown: drain deadline reached, cancelling running streams');
          engine.cancelAll();
        }, timeoutMs);
        await state.idle();
        clearTimeout(timer);
        const closed = new Promise((resolve) => server.close(resolve)); // stop accepting connections
        // Responses are finishing: close keep-alive sockets as they go idle, all of them at worst.
        const http = server as unknown as { closeIdleConnections(): void; closeAllConnections(): void };
        const sweep = setInterval(() => http.closeIdleConnections(), 20);
        const hard = setTimeout(() => http.closeAllConnections(), 5000);
        await closed;
        clearInterval(sweep);
        clearTimeout(hard);
        await engine.close();
      })();
      return closing;
    },
  };
}

/**
 * A compute token long and varied enough not to be guessed (`versa start` makes a 32-byte one): 16
 * characters at least, 8 distinct, and about 64 bits by its length and the character classes it uses.
 */
export function checkedToken(token: string | undefined): string {
  if (!token) throw new Error('a compute node needs a token: set VERSA_COMPUTE_TOKEN or give --token-file FILE');
  if (token.length < 16 || /\s/.test(token))
    throw new Error('the compute token must be at least 16 characters, without spaces');
  const distinct = new Set(token).size;
  const bits = Math.floor(token.length * Math.log2(alphabetOf(token)));
  if (distinct < MIN_DISTINCT || bits < MIN_TOKEN_BITS)
    throw new Error(
      `the compute token is too easy to guess (${distinct} distinct characters, about ${bits} bits; ` +
        `${MIN_DISTINCT} and ${MIN_TOKEN_BITS} at least): use a random one, e.g. \`openssl rand -hex 32\``,
    );
  return token;
}

const MIN_DISTINCT = 8;
const MIN_TOKEN_BITS = 64;

/** Size of the alphabet a token draws from, by the character classes it uses (digits, letters, others). */
function alphabetOf(token: string): number {
  const classes: Array<[RegExp, number]> = [
    [/[0-9]/, 10],
    [/[a-z]/, 26],
    [/[A-Z]/, 26],
    [/[^0-9a-zA-Z]/, 33],
  ];
  return classes.reduce((n, [re, size]) => (re.test(token) ? n + size : n), 0);
}
