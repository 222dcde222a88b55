import { readEvents, type ComputeEvent, type GenerateBody } from '../../protocol/compute.ts';
import { ApiError, type ErrorStatus } from '../../http/errors.ts';
import { readJson, type NodePool, type NodeResponse } from './nodes.ts';

/** An error from the compute tier, with the HTTP status the edge should answer (OpenAI shape). */
export class ComputeError extends Error {
  override name = 'ComputeError';
  constructor(
    message: string,
    readonly status: number,
    readonly type: string,
    readonly code: string | null = null,
    readonly param: string | null = null,
    /** Seconds to wait, when every node was busy: the smallest Retry-After they gave. */
    public retryAfter?: number,
  ) {
    super(message);
  }
}

/** The edge's answer for a compute-tier failure: the node's own 4xx, or the tier's 5xx. */
export function toApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  if (e instanceof ComputeError) {
    const status = ([400, 404, 409, 410, 413, 422, 429, 502, 503, 504] as const).includes(e.status as never)
      ? (e.status as ErrorStatus)
      : 502;
    return new ApiError(status, e.message, e.code, e.param);
  }
  return new ApiError(502, `the compute tier failed: ${(e as Error).message}`, 'compute_error');
}

/**
 * Sends a generation to the first node of `order` (Pools.route: the nodes serving its base, in
 * rendezvous order) that takes it, and yields its events. A node that fails before the first token
 * (see firstTaker) is skipped for the next one. After the first token a failure (the node's stream
 * breaks, it sends nothing within the idle timeout, or something that is not an event) becomes an
 * `error` event: the stream ends with it.
 */
export async function* generateOnPool(
  pool: NodePool,
  order: readonly string[],
  body: GenerateBody,
  token: string | undefined,
  signal?: AbortSignal,
): AsyncGenerator<ComputeEvent & { node?: string }> {
  const taken = await firstTaker(pool, order, '/v1/internal/generate', body, token, signal, body.deadline_ms);
  try {
    const idle = () => {
      pool.markDown(taken.url);
      taken.abort();
    };
    for await (const event of withIdleTimeout(readEvents(taken.res.body!), pool.timeouts.idleTimeoutMs, idle))
      yield { ...event, node: taken.url };
  } finally {
    taken.abort(); // frees the node's row if the caller stopped reading early; a no-op once read
  }
}

/** The most a node's /tokenize or /detokenize answer may weigh (a context's ids as JSON, with room). */
const JSON_REPLY_MAX_BYTES = 4 * 1024 * 1024;

/**
 * Posts `body` to `path` on the first node of `order` that takes it, failing over as a generation
 * does, and returns its JSON answer (for the small JSON routes: /v1/internal/tokenize, ...).
 */
export async function callOnPool(
  pool: NodePool,
  order: readonly string[],
  path: string,
  body: { base?: { id?: string } },
  token: string | undefined,
  signal?: AbortSignal,
): Promise<unknown> {
  const taken = await firstTaker(pool, order, path, body, token, signal);
  try {
    return await readJson(taken.res, JSON_REPLY_MAX_BYTES);
  } finally {
    taken.abort();
  }
}

/**
 * The first node of `order` that takes a request: its answer's headers came with a 2xx. A node that
 * fails first (unreachable, frozen past the first-byte timeout, 5xx, 429, or 409 serving other
 * weights than it said) is skipped for the next one; any other client error (4xx) is the request's
 * fault and is thrown, not retried. `abort` ends the attempt (and whatever the node still sends).
 */
async function firstTaker(
  pool: NodePool,
  order: readonly string[],
  path: string,
  body: { base?: { id?: string } },
  token: string | undefined,
  signal: AbortSignal | undefined,
  deadlineMs?: number,
): Promise<{ res: NodeResponse; url: string; abort: () => void }> {
  if (!order.length) throw new ComputeError('no compute nodes are configured', 503, 'server_error', 'no_compute_nodes');
  const payload = JSON.stringify(body); // once, whichever node takes it
  let lastError: ComputeError | undefined;
  let retryAfter: number | undefined;
  for (const url of order) {
    // One controller per attempt: the edge's own timeouts abort it, and so does the client leaving.
    const attempt = new AbortController();
    const forward = () => attempt.abort(signal?.reason);
    signal?.addEventListener('abort', forward);
    const abort = () => {
      signal?.removeEventListener('abort', forward);
      attempt.abort();
    };
    let taken = false;
    try {
      let res: NodeResponse | undefined;
      try {
        const response = pool.transport(`${url}${path}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
          body: payload,
          signal: attempt.signal,
        });
        res = await headersOrTimeout(pool, url, response, deadlineMs);
      } catch (e) {
        if (signal?.aborted) throw e;
        pool.markDown(url);
        // Clients never see a node's address: it is internal.
        lastError = new ComputeError('no compute node could be reached', 503, 'server_error', 'compute_unavailable');
        continue;
      }
      if (!res) {
        pool.markDown(url); // frozen or unreachable: failed over like a refused node
        const s = pool.timeouts.firstByteTimeoutMs / 1000;
        lastError = new ComputeError(`no compute node answered within ${s} s`, 504, 'timeout', 'compute_timeout');
        continue;
      }
      if (res.status === 401) {
        // The edge's token is wrong for this node: an operator's mistake, not the client's; try the next.
        pool.markDown(url);
        lastError = new ComputeError(
          'a compute node refused the edge (check VERSA_COMPUTE_TOKEN)',
          502,
          'server_error',
          'compute_auth',
        );
        continue;
      }
      if (!res.ok) {
        const detail = ((await readJson(res, ERROR_MAX_BYTES).catch(() => undefined)) ?? {}) as {
          error?: { message?: string; type?: string; code?: string; param?: string };
        };
        if (res.status === 409 && detail.error?.code === 'base_mismatch') {
          // The node's weights changed since it was probed: asked again before its next use.
          pool.forget(url);
          lastError = new ComputeError(
            `no compute node serves ${body.base?.id ?? 'the requested base version'}`,
            503,
            'server_error',
            'no_node_for_base',
          );
          continue;
        }
        const error = new ComputeError(
          detail.error?.message ?? `compute node answered ${res.status}`,
          res.status,
          detail.error?.type ?? 'server_error',
          detail.error?.code ?? null,
          detail.error?.param ?? null,
        );
        if (res.status >= 400 && res.status < 500 && res.status !== 429) throw error;
        // 5xx, a draining node's 503 included: the next node; 429: busy, not unhealthy.
        if (res.status !== 429) pool.markDown(url);
        else {
          const wait = Number(res.headers.get('retry-after'));
          if (Number.isFinite(wait) && wait >= 0) retryAfter = Math.min(retryAfter ?? wait, wait);
        }
        lastError = error;
        continue;
      }
      pool.markUp(url);
      taken = true;
      return { res, url, abort };
    } finally {
      if (!taken) abort();
    }
  }
  if (lastError?.status === 429) lastError.retryAfter = retryAfter;
  throw lastError!;
}

/** A node's error answer is a short JSON object: a longer one is not read. */
const ERROR_MAX_BYTES = 64 * 1024;

/**
 * The node's response once its headers come, or undefined for a node that is gone: past the
 * first-byte timeout the node is probed, and one that answers is alive with the request queued (a
 * full node answers 429 at once), so the edge keeps waiting, up to the request's deadline.
 */
async function headersOrTimeout(pool: NodePool, url: string, response: Promise<NodeResponse>, deadlineMs = Infinity) {
  response.catch(() => {}); // settles after the edge may have given up on it
  const started = Date.now();
  for (;;) {
    const timeout = after(pool.timeouts.firstByteTimeoutMs, undefined);
    const res = await Promise.race([response, timeout.promise]).finally(timeout.clear);
    if (res) return res;
    const alive = await pool.probe(url);
    const settled = await Promise.race([response, Promise.resolve(undefined)]);
    if (settled || !alive || Date.now() - started >= deadlineMs) return settled;
  }
}

/**
 * The node's events, ending in an error event when it sends nothing for `idleTimeoutMs` while the
 * edge waits for one (a reader that holds an event back is not the node's idleness). One timer for
 * the waits of a stream, re-armed only when it fires early, and not at all once no wait is on (a
 * reader that stops asking leaves no timer behind): a timer per event cost every token a Timeout's
 * allocation and its timer-list updates.
 */
async function* withIdleTimeout(
  events: AsyncGenerator<ComputeEvent>,
  idleTimeoutMs: number,
  onIdle: () => void,
): AsyncGenerator<ComputeEvent> {
  let waitingSince: number | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let fire!: (idle: 'idle') => void;
  const idle = new Promise<'idle'>((done) => (fire = done));
  const check = () => {
    timer = undefined;
    if (waitingSince === undefined) return;
    const waited = Date.now() - waitingSince;
    if (waited >= idleTimeoutMs) fire('idle');
    else (timer = setTimeout(check, idleTimeoutMs - waited)).unref?.();
  };
  try {
    for (;;) {
      waitingSince = Date.now();
      if (!timer) (timer = setTimeout(check, idleTimeoutMs)).unref?.(); // unref: no exit waits on it (Node)
      const next = await Promise.race([events.next(), idle]);
      waitingSince = undefined;
      if (next === 'idle') {
        onIdle();
        events.return(undefined).catch(() => {});
        const message = `the compute node sent nothing for ${idleTimeoutMs / 1000} s`;
        yield { type: 'error', error: { message, type: 'timeout', code: 'compute_timeout' } };
        return;
      }
      if (next.done) return;
      // The last event: no timer outlives it, though the reader may never ask for the stream's end.
      if (next.value.type !== 'token') timer = void clearTimeout(timer);
      yield next.value;
    }
  } finally {
    clearTimeout(timer);
  }
}

/** A promise of `value` in `ms` (cancellable: a pending timer would keep Node's event loop alive). */
function after<T>(ms: number, value: T): { promise: Promise<T>; clear: () => void } {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const promise = new Promise<T>((done) => {
    timer = setTimeout(() => done(value), ms);
  });
  return { promise, clear: () => clearTimeout(timer) };
}
