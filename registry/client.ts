import type { VersionStatus } from './schema.ts';

/**
 * A small typed HTTP client for the registry API (fetch-based: Node, Workers, browsers). The CLI
 * uses it; so can tests and the compute node. Errors are thrown as RegistryError with the server's
 * JSON error message and status.
 */
class RegistryError extends Error {
  override name = 'RegistryError';
  constructor(
    readonly status: number,
    message: string,
    readonly code: string | null = null,
  ) {
    super(message);
  }
}

/** A part of a multipart upload; files are streamed from `open()` when the body is sent. */
export type UploadPart =
  | { field: string; value: string }
  | { file: string; bytes: number; open: () => ReadableStream<Uint8Array>; contentType?: string };

export interface ClientOptions {
  url: string;
  key?: string;
  fetch?: typeof fetch;
  /** Waits before each retry of an idempotent upload (default 0.5 s, 1 s, 2 s: four attempts in all). */
  retryDelaysMs?: number[];
}

/** Upload options: progress, and a retry-safe publish under an Idempotency-Key. */
export interface UploadOptions {
  /** Gets file bytes sent so far (from 0 again on a retry). */
  onProgress?: (sent: number) => void;
  /**
   * Sent as `Idempotency-Key`; with one, a network error or a 5xx is retried with the same key, so
   * a version committed whose reply was lost is answered, not made twice.
   */
  idempotencyKey?: string;
}

interface AliasMove {
  adapter: string;
  alias: string;
  version: number;
  previous_version: number | null;
  changed: boolean;
}

export interface Tenant {
  id: string;
  name: string;
  created_at: string;
}

/**
 * The body of POST and PATCH /v1/tenants (the wire's names): only the fields given are sent;
 * `max_adapter_fraction: null` restores the registry's default.
 */
export interface TenantSettingsBody {
  name?: string;
  max_adapter_fraction?: number | null;
}

export interface ApiKey {
  id: string;
  tenant: string;
  name: string;
  prefix: string;
  scopes: string[];
  created_at: string;
  revoked_at: string | null;
}

const aliasPath = (adapter: string, alias: string) =>
  `/v1/adapters/${encodeURIComponent(adapter)}/aliases/${encodeURIComponent(alias)}`;
const experimentPath = (id: string) => `/v1/experiments/${encodeURIComponent(id)}`;

/** Statuses worth retrying: the server or a proxy in between failed; 507 (storage full) will not pass by itself. */
const RETRYABLE = new Set([500, 502, 503, 504]);

export class RegistryClient {
  readonly url: string;
  private readonly key?: string;
  private readonly fetcher: typeof fetch;
  private readonly retryDelaysMs: number[];

  constructor(options: ClientOptions) {
    this.url = options.url.replace(/\/+$/, '');
    this.key = options.key;
    this.fetcher = options.fetch ?? fetch;
    this.retryDelaysMs = options.retryDelaysMs ?? [500, 1000, 2000];
  }

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    return { ...(this.key ? { authorization: `Bearer ${this.key}` } : {}), ...extra };
  }

  async request(method: string, path: string, body?: unknown): Promise<Response> {
    let res: Response;
    try {
      res = await this.fetcher(this.url + path, {
        method,
        headers: this.headers(body === undefined ? {} : { 'content-type': 'application/json' }),
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      const reason = (e as Error).cause ? String((e as Error & { cause: unknown }).cause) : (e as Error).message;
      throw new RegistryError(0, `cannot reach the registry at ${this.url}: ${reason}`);
    }
    if (!res.ok) throw await errorOf(res);
    return res;
  }

  // A caller that names no type gets the API's JSON as is.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  async json<T = any>(method: string, path: string, body?: unknown): Promise<T> {
    return (await this.request(method, path, body)).json() as Promise<T>;
  }

  /** Every item of a cursor-paginated list. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- as json()
  async *paginate<T = any>(path: string): AsyncGenerator<T> {
    let cursor: string | null = null;
    do {
      const sep = path.includes('?') ? '&' : '?';
      const page: { data: T[]; next_cursor: string | null } = await this.json(
        'GET',
        cursor ? `${path}${sep}cursor=${encodeURIComponent(cursor)}` : path,
      );
      yield* page.data;
      cursor = page.next_cursor;
    } while (cursor);
  }

  // ---- operator actions: thin over the HTTP API, so they follow what the server decides ----

  /** Points `alias` of `adapter` at `version`; `force` moves an alias that is a running experiment's arm. */
  setAlias(adapter: string, alias: string, move: { version: number; reason?: string; force?: boolean }) {
    return this.json<AliasMove>('PUT', aliasPath(adapter, alias), move);
  }

  rollbackAlias(adapter: string, alias: string, move: { reason?: string; force?: boolean } = {}) {
    return this.json<AliasMove>('POST', `${aliasPath(adapter, alias)}/rollback`, move);
  }

  /** An alias's moves, newest first. */
  aliasHistory(adapter: string, alias: string) {
    return this.paginate(`${aliasPath(adapter, alias)}/history`);
  }

  /** Sets an adapter version's status, or a base model version's with `kind: 'model'`. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- as json()
  setVersionStatus<T = any>(kind: 'adapter' | 'model', name: string, version: number, status: VersionStatus) {
    const collection = kind === 'adapter' ? 'adapters' : 'models';
    return this.json<T>('PATCH', `/v1/${collection}/${encodeURIComponent(name)}/versions/${version}`, { status });
  }

  /** POST /v1/experiments: `spec` is the API's body (name, adapter, arms, metrics, guardrails, ...). */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- as json()
  createExperiment<T = any>(spec: Record<string, unknown>) {
    return this.json<T>('POST', '/v1/experiments', spec);
  }

  /** PATCH an experiment: weights, arms (draft), status, kill switch, metrics, guardrails. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- as json()
  updateExperiment<T = any>(id: string, patch: Record<string, unknown>) {
    return this.json<T>('PATCH', experimentPath(id), patch);
  }

  /** Moves the adapter's production alias to `arm`'s version and stops the experiment. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- as json()
  promoteArm<T = any>(id: string, arm: string) {
    return this.json<T>('POST', `${experimentPath(id)}/promote`, { arm });
  }

  createTenant(id: string, settings: TenantSettingsBody = {}) {
    return this.json<Tenant>('POST', '/v1/tenants', { id, ...settings });
  }

  updateTenant(id: string, settings: TenantSettingsBody) {
    return this.json<Tenant>('PATCH', `/v1/tenants/${encodeURIComponent(id)}`, settings);
  }

  /** Visibility, task or description of an adapter (null clears a task or description). */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- as json()
  updateAdapter<T = any>(name: string, patch: Record<string, unknown>) {
    return this.json<T>('PATCH', `/v1/adapters/${encodeURIComponent(name)}`, patch);
  }

  async listTenants(): Promise<Tenant[]> {
    return (await this.json<{ data: Tenant[] }>('GET', '/v1/tenants')).data;
  }

  /** The key is in the answer, once: the registry keeps only its hash. Default tenant: the caller's. */
  createKey(spec: { scopes: string[]; tenant?: string; name?: string }) {
    return this.json<ApiKey & { key: string }>('POST', '/v1/keys', spec);
  }

  async listKeys(tenant?: string): Promise<ApiKey[]> {
    const query = tenant ? `?tenant=${encodeURIComponent(tenant)}` : '';
    return (await this.json<{ data: ApiKey[] }>('GET', `/v1/keys${query}`)).data;
  }

  revokeKey(id: string) {
    return this.json<ApiKey>('DELETE', `/v1/keys/${encodeURIComponent(id)}`);
  }

  /** POST multipart/form-data, streaming the file parts (opened again for a retry). */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- as json()
  async upload<T = any>(path: string, parts: UploadPart[], options: UploadOptions = {}): Promise<T> {
    const { idempotencyKey, onProgress } = options;
    const retries = idempotencyKey ? this.retryDelaysMs : [];
    for (let attempt = 0; ; attempt++) {
      const boundary = `versa-${crypto.randomUUID()}`;
      let failure: RegistryError;
      try {
        const res = await this.fetcher(this.url + path, {
          method: 'POST',
          headers: this.headers({
            'content-type': `multipart/form-data; boundary=${boundary}`,
            ...(idempotencyKey ? { 'idempotency-key': idempotencyKey } : {}),
          }),
          body: multipartStream(boundary, parts, onProgress),
          // Node's fetch needs this to send a stream body.
          duplex: 'half',
        } as RequestInit);
        if (res.ok) return (await res.json()) as T;
        failure = await errorOf(res);
        if (!RETRYABLE.has(res.status)) throw failure;
      } catch (e) {
        if (e instanceof RegistryError) throw e;
        const reason = (e as Error).cause ? String((e as Error & { cause: unknown }).cause) : (e as Error).message;
        failure = new RegistryError(0, `upload to ${this.url} failed: ${reason}`);
      }
      if (attempt >= retries.length) throw failure;
      await new Promise((r) => setTimeout(r, retries[attempt]));
    }
  }
}

async function errorOf(res: Response): Promise<RegistryError> {
  const text = await res.text().catch(() => '');
  try {
    const body = JSON.parse(text) as { error?: { message?: string; code?: string } };
    if (body.error?.message)
      return new RegistryError(res.status, `${res.status}: ${body.error.message}`, body.error.code ?? null);
  } catch {
    // not JSON
  }
  return new RegistryError(res.status, `${res.status} ${res.statusText}${text ? `: ${text.slice(0, 200)}` : ''}`);
}

function quote(s: string): string {
  return s.replace(/[\r\n"\\]/g, (ch) => encodeURIComponent(ch));
}

/** A multipart/form-data body that reads each file only when it is its turn. */
function multipartStream(
  boundary: string,
  parts: UploadPart[],
  onProgress?: (sent: number) => void,
): ReadableStream<Uint8Array> {
  const enc = new TextEncoder();
  let index = 0;
  let current: ReadableStreamDefaultReader<Uint8Array> | null = null;
  let sent = 0;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (current) {
        const r = await current.read();
        if (!r.done) {
          sent += r.value.length;
          onProgress?.(sent);
          controller.enqueue(r.value);
          return;
        }
        current = null;
        controller.enqueue(enc.encode('\r\n'));
        return;
      }
      if (index >= parts.length) {
        controller.enqueue(enc.encode(`--${boundary}--\r\n`));
        controller.close();
        return;
      }
      const part = parts[index++];
      if ('field' in part) {
        controller.enqueue(
          enc.encode(
            `--${boundary}\r\nContent-Disposition: form-data; name="${quote(part.field)}"\r\n\r\n${part.value}\r\n`,
          ),
        );
        return;
      }
      controller.enqueue(
        enc.encode(
          `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${quote(part.file)}"\r\n` +
            `Content-Type: ${part.contentType ?? 'application/octet-stream'}\r\n\r\n`,
        ),
      );
      current = part.open().getReader();
    },
    async cancel(reason) {
      await current?.cancel(reason);
    },
  });
}
