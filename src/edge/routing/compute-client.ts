import type { NodePool } from './nodes.ts';

/** What the edge asks a compute node for (the node's /v1/internal/generate body). */
export interface ComputeRequest {
  adapter?: { id: string; sha256: string; files: Array<{ name: string; sha256: string; bytes: number; url?: string }> } | null;
  prompt?: string;
  prompt_ids?: number[];
  max_tokens?: number;
  temperature?: number;
  top_p?: number;
  seed?: number;
  stop?: string[];
  logprobs?: number;
  deadline_ms?: number;
}

export type ComputeEvent =
  | { type: 'token'; token: number; text: string; logprob?: number; top?: Array<{ token: number; text: string; logprob: number }> }
  | { type: 'done'; finish_reason: 'stop' | 'length' | 'cancelled'; usage: { prompt_tokens: number; completion_tokens: number }; timing?: { ttft_ms: number; total_ms: number } }
  | { type: 'error'; error: { message: string; type: string; code?: string | null } };

/** An error from the compute tier, with the HTTP status the edge should answer (OpenAI shape). */
export class ComputeError extends Error {
  override name = 'ComputeError';
  constructor(
    message: string,
    readonly status: number,
    readonly type: string,
    readonly code: string | null = null,
    readonly param: string | null = null,
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
export async function* generateOnPool(pool: NodePool, key: string, body: ComputeRequest, signal?: AbortSignal): AsyncGenerator<ComputeEvent & { node?: string }> {
  const order = await pool.order(key);
  if (!order.length) throw new ComputeError('no compute nodes are configured', 503, 'server_error', 'no_compute_nodes');
  let lastError: ComputeError | undefined;
  for (const url of order) {
    let res: Response;
    try {
      res = await fetch(`${url}/v1/internal/generate`, {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal,
      });
    } catch (e) {
      if (signal?.aborted) throw e;
      pool.markDown(url);
      lastError = new ComputeError(`compute node ${url} is unreachable`, 503, 'server_error', 'compute_unavailable');
      continue;
    }
    if (!res.ok) {
      const detail = await res.json().catch(() => ({})) as { error?: { message?: string; type?: string; code?: string; param?: string } };
      const error = new ComputeError(detail.error?.message ?? `compute node answered ${res.status}`, res.status, detail.error?.type ?? 'server_error', detail.error?.code ?? null, detail.error?.param ?? null);
      if (res.status >= 400 && res.status < 500 && res.status !== 429) throw error;
      if (res.status !== 429) pool.markDown(url);
      lastError = error;
      continue;
    }
    pool.markUp(url);
    yield* readEvents(res, url);
    return;
  }
  throw lastError!;
}

/** Parses the node's NDJSON; a broken stream becomes a final error event. */
async function* readEvents(res: Response, node: string): AsyncGenerator<ComputeEvent & { node?: string }> {
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = '';
  let ended = false;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffered += value;
      let newline: number;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, newline).trim();
        buffered = buffered.slice(newline + 1);
        if (!line) continue;
        const event = JSON.parse(line) as ComputeEvent;
        if (event.type !== 'token') ended = true;
        yield { ...event, node };
      }
    }
  } catch (e) {
    if (!ended) yield { type: 'error', error: { message: `the compute node's stream broke: ${(e as Error).message}`, type: 'server_error', code: 'compute_stream_broken' }, node };
    return;
  }
  if (!ended) yield { type: 'error', error: { message: 'the compute node ended the stream early', type: 'server_error', code: 'compute_stream_broken' }, node };
}
