import { readEvents, type ComputeEvent, type GenerateBody } from '../../protocol/compute.ts';
import type { NodePool } from './nodes.ts';

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

/**
 * Sends a generation to the first node in rendezvous order that takes it, and yields its events.
 * A node that fails before the first token (unreachable, 5xx, 429) is skipped for the next one;
 * a client error (4xx) is the request's fault and is not retried. After the first token a failure
 * becomes an `error` event: the stream ends with it, never hangs.
 */
export async function* generateOnPool(
  pool: NodePool,
  key: string,
  body: GenerateBody,
  token: string | undefined,
  signal?: AbortSignal,
): AsyncGenerator<ComputeEvent & { node?: string }> {
  const order = await pool.order(key);
  if (!order.length) throw new ComputeError('no compute nodes are configured', 503, 'server_error', 'no_compute_nodes');
  let lastError: ComputeError | undefined;
  let retryAfter: number | undefined;
  for (const url of order) {
    let res: Response;
    try {
      res = await fetch(`${url}/v1/internal/generate`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: JSON.stringify(body),
        signal,
      });
    } catch (e) {
      if (signal?.aborted) throw e;
      pool.markDown(url);
      // Clients never see a node's address: it is internal.
      lastError = new ComputeError('no compute node could be reached', 503, 'server_error', 'compute_unavailable');
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
      const detail = (await res.json().catch(() => ({}))) as {
        error?: { message?: string; type?: string; code?: string; param?: string };
      };
      const error = new ComputeError(
        detail.error?.message ?? `compute node answered ${res.status}`,
        res.status,
        detail.error?.type ?? 'server_error',
        detail.error?.code ?? null,
        detail.error?.param ?? null,
      );
      if (res.status >= 400 && res.status < 500 && res.status !== 429) throw error;
      if (res.status !== 429) pool.markDown(url);
      else {
        const wait = Number(res.headers.get('retry-after'));
        if (Number.isFinite(wait) && wait >= 0) retryAfter = Math.min(retryAfter ?? wait, wait);
      }
      lastError = error;
      continue;
    }
    pool.markUp(url);
    for await (const event of readEvents(res.body!)) yield { ...event, node: url };
    return;
  }
  if (lastError?.status === 429) lastError.retryAfter = retryAfter;
  throw lastError!;
}
