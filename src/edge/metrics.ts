import { Hono, type Context, type MiddlewareHandler } from 'hono';
import { authenticate } from '../../registry/auth.ts';
import type { AppEnv } from './env.ts';
import { formatRef } from '../../registry/names.ts';
import { ApiError } from '../http/errors.ts';
import { hasScope } from '../http/principal.ts';
import { boundedLabel, OTHER } from '../util/bounded-labels.ts';
import type { Target } from './generation/resolve.ts';

/** Distinct values each request-driven label keeps before "other" (as the compute node's adapter label). */
const MAX_MODELS = 64;
const MAX_ARMS = 32;
const MAX_CODES = 32;

const TTFT_BUCKETS = [0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const DURATION_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

/** How one completion ended: its usage event's data (see complete.ts). */
interface CompletionUsage {
  prompt_tokens: number;
  completion_tokens: number;
  /** Until the first token (meaningless when the request failed before it: `status` is set then). */
  ttft_ms: number;
  total_ms: number;
  stream: boolean;
  /** The error code, when it failed. */
  error?: unknown;
  /** The HTTP status of a failure before the first token. */
  status?: unknown;
}

type Labels = Record<string, string>;

/**
 * The edge's Prometheus metrics, per adapter version (`model`: `NAME@VERSION`, or the base's
 * `NAME@VERSION` without an adapter) and experiment arm. Plain counters and histograms written as
 * Prometheus text: no Node API, so the Worker serves the same page (its counts are its isolate's,
 * since it started). Every label a request can vary is bounded.
 */
export class EdgeMetrics {
  private readonly requests = new Series();
  private readonly tokens = new Series();
  private readonly ttft = new Histograms(TTFT_BUCKETS);
  private readonly duration = new Histograms(DURATION_BUCKETS);
  private readonly modelLabel = boundedLabel(MAX_MODELS);
  private readonly armLabel = boundedLabel(MAX_ARMS);
  private readonly codeLabel = boundedLabel(MAX_CODES);
  /** What each request in flight resolved to (set by complete(), read when it ends or fails). */
  private readonly targets = new WeakMap<Request, Labels>();
  /** Requests whose completion was counted, so that the refusal meter does not count them again. */
  private readonly counted = new WeakSet<Request>();
  private readonly started = Date.now();

  /** Notes what a request resolved to: its counts carry these labels. */
  resolved(c: Context, target: Target): void {
    const a = target.adapter;
    const e = target.experiment;
    // Experiment and arm are bounded together: an arm's name means something within its experiment only.
    const pair = e ? this.armLabel(`${e.id}/${e.arm}`) : '';
    const other = pair === OTHER;
    this.targets.set(c.req.raw, {
      model: this.modelLabel(a ? formatRef(a.name, a.version) : formatRef(target.base.name, target.base.version)),
      experiment: e ? (other ? OTHER : e.id) : '',
      arm: e ? (other ? OTHER : e.arm) : '',
    });
  }

  /** Counts a completion that reached the compute tier, however it ended. */
  completed(c: Context, u: CompletionUsage): void {
    this.counted.add(c.req.raw);
    const labels = this.labelsOf(c);
    const failed = 'error' in u;
    // A failure before the first token is an HTTP error; after it a stream still said 200, a whole response 502.
    const status = typeof u.status === 'number' ? u.status : failed && !u.stream ? 502 : 200;
    this.count(labels, status, failed ? String(u.error ?? 'error') : undefined);
    if (u.status === undefined) this.ttft.observe(labels, u.ttft_ms / 1000);
    this.duration.observe(labels, u.total_ms / 1000);
    if (u.prompt_tokens) this.tokens.add({ ...labels, kind: 'prompt' }, u.prompt_tokens);
    if (u.completion_tokens) this.tokens.add({ ...labels, kind: 'completion' }, u.completion_tokens);
  }

  /**
   * Middleware of the generation routes: counts the requests refused before a completion started
   * (bad input, unknown model, limits, no node for the base), under the version they resolved to
   * when they got that far, else `model="unresolved"`.
   */
  readonly meterRefusals: MiddlewareHandler = async (c, next) => {
    await next();
    if (c.res.status < 400 || this.counted.has(c.req.raw)) return;
    const code = c.error instanceof ApiError ? c.error.code : undefined;
    this.count(this.labelsOf(c), c.res.status, code ?? 'error');
  };

  /** The Prometheus text exposition (format 0.0.4). */
  exposition(): string {
    return [
      ...this.requests.lines(
        'versa_edge_requests_total',
        'counter',
        'Generation requests by adapter version, experiment arm, status class and error code',
      ),
      ...this.tokens.lines(
        'versa_edge_tokens_total',
        'counter',
        'Tokens by adapter version and arm (prompt, completion)',
      ),
      ...this.ttft.lines('versa_edge_time_to_first_token_seconds', 'Time from request to the first token'),
      ...this.duration.lines('versa_edge_request_duration_seconds', 'Time from request to the last token or the error'),
      '# HELP versa_edge_start_time_seconds When these counts started (process or Worker isolate)',
      '# TYPE versa_edge_start_time_seconds gauge',
      `versa_edge_start_time_seconds ${this.started / 1000}`,
      '',
    ].join('\n');
  }

  private labelsOf(c: Context): Labels {
    return this.targets.get(c.req.raw) ?? { model: 'unresolved', experiment: '', arm: '' };
  }

  private count(labels: Labels, status: number, code: string | undefined): void {
    this.requests.add(
      { ...labels, status: `${Math.floor(status / 100)}xx`, code: code ? this.codeLabel(code) : '' },
      1,
    );
  }
}

/** Counters by label set. */
class Series {
  private readonly values = new Map<string, { labels: Labels; value: number }>();

  add(labels: Labels, n: number): void {
    const key = labelText(labels);
    const entry = this.values.get(key) ?? { labels, value: 0 };
    entry.value += n;
    this.values.set(key, entry);
  }

  lines(name: string, type: string, help: string): string[] {
    const rows = [...this.values.values()].map((e) => `${name}{${labelText(e.labels)}} ${e.value}`);
    return [`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, ...rows.sort()];
  }
}

/** Histograms by label set: cumulative buckets, sum and count. */
class Histograms {
  private readonly values = new Map<string, { labels: Labels; buckets: number[]; sum: number; count: number }>();
  constructor(private readonly bounds: number[]) {}

  observe(labels: Labels, seconds: number): void {
    const key = labelText(labels);
    const entry = this.values.get(key) ?? { labels, buckets: this.bounds.map(() => 0), sum: 0, count: 0 };
    this.bounds.forEach((le, i) => seconds <= le && entry.buckets[i]++);
    entry.sum += seconds;
    entry.count++;
    this.values.set(key, entry);
  }

  lines(name: string, help: string): string[] {
    const rows = [...this.values.values()].flatMap((e) => {
      const labels = labelText(e.labels);
      return [
        ...this.bounds.map((le, i) => `${name}_bucket{${labels},le="${le}"} ${e.buckets[i]}`),
        `${name}_bucket{${labels},le="+Inf"} ${e.count}`,
        `${name}_sum{${labels}} ${e.sum}`,
        `${name}_count{${labels}} ${e.count}`,
      ];
    });
    return [`# HELP ${name} ${help}`, `# TYPE ${name} histogram`, ...rows];
  }
}

/** `a="x",b="y"`, values escaped as the text format wants (backslash, quote, newline). */
function labelText(labels: Labels): string {
  return Object.entries(labels)
    .map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`)
    .join(',');
}

/**
 * VERSA_METRICS_TOKEN: the bearer token a Prometheus scraper sends for /metrics (no API key needed).
 * Undefined when unset; one line on a guessable one.
 */
export function metricsToken(value: string | undefined): string | undefined {
  const token = value?.trim();
  if (!token) return undefined;
  if (token.length < 16 || /\s/.test(token))
    throw new Error('VERSA_METRICS_TOKEN must be at least 16 characters, without spaces (e.g. `openssl rand -hex 32`)');
  return token;
}

/**
 * GET /metrics: the edge's metrics for a scraper holding the metrics token, or for the registry
 * operator's API key (the page names every tenant's adapters). Never open.
 */
export function metricsRoutes(metrics: EdgeMetrics, token: string | undefined): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.get('/metrics', async (c) => {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(c.req.header('authorization') ?? '');
    const sent = match?.[1];
    if (!sent)
      throw new ApiError(
        401,
        'missing credentials: send "Authorization: Bearer" with the metrics token (VERSA_METRICS_TOKEN) ' +
          'or an operator API key',
        'missing_api_key',
      );
    if (!(token && (await sameSecret(sent, token)))) {
      const principal = await authenticate(c.var.deps.registry, sent);
      if (!principal) throw new ApiError(401, 'invalid metrics token or API key', 'invalid_api_key');
      if (!hasScope(principal, 'operator'))
        throw new ApiError(403, 'the metrics need the metrics token or an operator key', 'insufficient_scope');
    }
    return c.body(metrics.exposition(), 200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
  });
  return app;
}

/** Compares secrets in time independent of where they differ (their SHA-256 digests, Web Crypto). */
async function sameSecret(a: string, b: string): Promise<boolean> {
  const digest = async (s: string) =>
    new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(s)));
  const [x, y] = await Promise.all([digest(a), digest(b)]);
  let diff = 0;
  for (let i = 0; i < x.length; i++) diff |= x[i] ^ y[i];
  return diff === 0;
}
