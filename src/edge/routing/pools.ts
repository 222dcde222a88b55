import { ApiError } from '../../http/errors.ts';
import { NodePool, type NodeTimeouts } from './nodes.ts';

/** How the edge reaches its compute nodes: GenerationConfig has these, by the same names. */
export interface PoolSettings extends NodeTimeouts {
  /** Compute-node URLs by base model name; "*": any base (each node serves the base it reports on /readyz). */
  nodes: Record<string, string[]>;
  /** The compute nodes' shared token (`VERSA_COMPUTE_TOKEN`), sent on every call to them. */
  computeToken?: string;
  /** Active health checks (/readyz) of every node, at most one round per this (0 = off). */
  healthCheckMs: number;
}

/** The settings parseComputeNodes reads (environment variables, or Worker vars). */
export interface ComputeNodesEnv {
  COMPUTE_NODES?: string;
  /** "1": allow plain http to nodes on public addresses (the token and prompts travel in cleartext). */
  VERSA_ALLOW_PLAINTEXT_NODES?: string;
}

/**
 * Parses COMPUTE_NODES: a JSON object {"BASE": ["https://..."]} (nodes for that base name), a JSON
 * array of URLs or a comma-separated list of them (nodes for any base). Either way a request goes
 * only to nodes that report serving its exact base version. Plain http is refused to a host that
 * is not loopback or private unless VERSA_ALLOW_PLAINTEXT_NODES=1. Throws one line on a bad value.
 */
export function parseComputeNodes(env: ComputeNodesEnv): Record<string, string[]> {
  const text = env.COMPUTE_NODES?.trim();
  if (!text) return {};
  let parsed: unknown = text
    .split(',')
    .map((u) => u.trim())
    .filter(Boolean);
  if (text.startsWith('{') || text.startsWith('[')) {
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new Error('COMPUTE_NODES is not valid JSON (expected ["https://host:port", ...] or {"BASE": [...]})');
    }
  }
  const byBase = Array.isArray(parsed) ? { '*': parsed } : (parsed as Record<string, unknown>);
  const plaintext = env.VERSA_ALLOW_PLAINTEXT_NODES?.trim() === '1';
  return Object.fromEntries(
    Object.entries(byBase).map(([base, urls]) => [
      base,
      (Array.isArray(urls) ? urls : [urls]).map((u) => nodeUrl(u, plaintext)),
    ]),
  );
}

/** A compute node's base URL (http or https, no query), without a trailing slash. */
function nodeUrl(value: unknown, allowPlaintext: boolean): string {
  const text = typeof value === 'string' ? value.trim() : '';
  let url: URL | undefined;
  try {
    url = new URL(text);
  } catch {
    url = undefined;
  }
  if (!url || !/^https?:$/.test(url.protocol) || url.search || url.hash || url.username)
    throw new Error(`COMPUTE_NODES: ${JSON.stringify(value)} is not an http(s) URL of a compute node`);
  if (url.protocol === 'http:' && !allowPlaintext && !isPrivateHost(url.hostname))
    throw new Error(
      `COMPUTE_NODES: ${text} is plain http to a public address, where the compute token and prompts would ` +
        'travel in cleartext: use https (versa compute --tls-cert/--tls-key) or set VERSA_ALLOW_PLAINTEXT_NODES=1',
    );
  return trimSlash(text);
}

const trimSlash = (u: string) => u.replace(/\/+$/, '');

/**
 * Whether a host is on this machine or a private network: loopback, private and link-local
 * addresses (IPv4 and IPv6), shared address space, and names that are not public: localhost, a
 * single label (`compute`, as container networks name hosts), .internal, .local, .lan, .home.arpa.
 */
export function isPrivateHost(hostname: string): boolean {
  const host = hostname
    .toLowerCase()
    .replace(/^\[|\]$/g, '')
    .replace(/\.$/, '');
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(host.replace(/^::ffff:/, ''));
  if (v4) {
    const [a, b] = [Number(v4[1]), Number(v4[2])];
    return (
      a === 127 ||
      a === 10 ||
      (a === 172 && b >= 16 && b <= 31) ||
      (a === 192 && b === 168) ||
      (a === 169 && b === 254) ||
      (a === 100 && b >= 64 && b <= 127)
    );
  }
  if (host.includes(':'))
    return host === '::1' || /^f[cd][0-9a-f]{0,2}:/.test(host) || /^fe[89ab][0-9a-f]?:/.test(host);
  return host === 'localhost' || !host.includes('.') || /\.(localhost|internal|local|lan|home\.arpa)$/.test(host);
}

/** A base version a request resolved to, as routing needs it. */
export interface BaseTarget {
  name: string;
  version: number;
  /** The sha256 of its files (the registry's): the only nodes that may serve it report the same. */
  sha256: string;
}

/**
 * The compute nodes, one NodePool over all of them (kept per isolate, so passive health marks and
 * what each node serves persist between requests), and which of them each base name may use.
 */
export class Pools {
  readonly pool: NodePool;
  constructor(private readonly config: PoolSettings) {
    const c = config;
    this.pool = new NodePool([...new Set(Object.values(c.nodes).flat())], {
      timeouts: {
        connectTimeoutMs: c.connectTimeoutMs,
        firstByteTimeoutMs: c.firstByteTimeoutMs,
        idleTimeoutMs: c.idleTimeoutMs,
      },
      healthEveryMs: c.healthCheckMs,
      token: c.computeToken,
    });
  }

  /** The nodes a base name may use: its own list in the map form of COMPUTE_NODES, else those for any base. */
  private allowed(name: string): readonly string[] {
    return this.config.nodes[name] ?? this.config.nodes['*'] ?? [];
  }

  /**
   * The nodes serving exactly `base`, in the order to try for `key`; a 503 naming the base when none
   * does: never other weights under its name.
   */
  async route(base: BaseTarget, key: string): Promise<string[]> {
    const nodes = await this.pool.serving(base.sha256, key, this.allowed(base.name));
    if (nodes.length) return nodes;
    const ref = `${base.name}@${base.version}`;
    throw new ApiError(
      503,
      `no compute node serves ${ref} (sha256 ${base.sha256.slice(0, 12)}...): serve its files with ` +
        `\`versa start --model PATH --name ${base.name}\`, or list a node that does in COMPUTE_NODES`,
      'no_node_for_base',
    );
  }

  /** Whether a healthy node serves `base` now (what /v1/models says), after asking nodes not heard from. */
  async servable(): Promise<(base: { name: string; sha256: string }) => boolean> {
    await this.pool.learn();
    return (base) => this.pool.serves(base.sha256, this.allowed(base.name));
  }

  all(): NodePool[] {
    return [this.pool];
  }

  /** Healthy nodes out of all (no addresses: /healthz is public). */
  summary(): { healthy: number; total: number } {
    return this.pool.summary();
  }
}
