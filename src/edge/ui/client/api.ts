/** Browser module `/ui/assets/api.js`: the API key, JSON calls and the SSE completion reader. */

const STORAGE = 'versa.apiKey';

export function getKey(): string {
  return localStorage.getItem(STORAGE) || '';
}

export function setKey(key: string): void {
  localStorage.setItem(STORAGE, key.trim());
}

export function forgetKey(): void {
  localStorage.removeItem(STORAGE);
}

// A key handed over as #key=vsk_... (the start banner prints such a link). Fragments never reach
// a server; the key is stored, then wiped from the address bar and the history entry. A link never
// silently replaces a different key already stored: someone else's link would sign you in as them.
export function takeKeyFromFragment(): boolean {
  const m = /^#key=([^&]+)/.exec(location.hash);
  if (!m) return false;
  const key = decodeURIComponent(m[1]).trim();
  const stored = getKey();
  history.replaceState(null, '', `${location.pathname}${location.search}#/adapters`);
  if (stored && stored !== key && !confirm('This link carries another API key. Replace the stored key with it?')) {
    return false;
  }
  setKey(key);
  return true;
}

/** The `error` object of the API's error responses (and of error chunks in a stream). */
interface ErrorBody {
  message?: string;
  code?: string | null;
  param?: string | null;
}

class ApiError extends Error {
  status: number;
  code: string | null;
  param: string | null;

  constructor(status: number, error: ErrorBody | null | undefined) {
    super((error && error.message) || `HTTP ${status}`);
    this.name = 'ApiError';
    this.status = status;
    this.code = (error && error.code) || null;
    this.param = (error && error.param) || null;
  }
}

// The key only ever goes to this origin: paths are absolute /v1/ paths, never URLs (and the
// page's Content-Security-Policy allows connect-src 'self' only).
function apiPath(path: string): string {
  if (!/^\/v1\/[^/]/.test(path)) throw new Error(`not an API path: ${path}`);
  return path;
}

function headers(json: boolean): Record<string, string> {
  const out: Record<string, string> = { authorization: `Bearer ${getKey()}` };
  if (json) out['content-type'] = 'application/json';
  return out;
}

async function errorOf(res: Response): Promise<ApiError> {
  const text = await res.text().catch(() => '');
  let error: ErrorBody | null;
  try {
    error = JSON.parse(text).error;
  } catch {
    error = { message: `HTTP ${res.status}${text ? `: ${text.slice(0, 200)}` : ''}` };
  }
  return new ApiError(res.status, error);
}

/** The API's JSON as it comes: its shapes are the server's (/openapi.json), not restated here. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- see above
export type Json = any;

// One JSON call; resolves to { data, warning } (x-versa-warning, e.g. a deprecated version).
export async function request(
  method: string,
  path: string,
  body?: unknown,
): Promise<{ data: Json; warning: string | null }> {
  let res;
  try {
    res = await fetch(apiPath(path), {
      method,
      headers: headers(body !== undefined),
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
    });
  } catch (e) {
    throw new Error(`could not reach the API: ${(e as Error).message}`, { cause: e });
  }
  if (!res.ok) throw await errorOf(res);
  const text = await res.text();
  return { data: text ? JSON.parse(text) : null, warning: res.headers.get('x-versa-warning') };
}

export async function api(method: string, path: string, body?: unknown): Promise<Json> {
  return (await request(method, path, body)).data;
}

export function query(params: Record<string, string | number | null | undefined>): string {
  const parts = Object.entries(params)
    .filter(([, v]) => v !== undefined && v !== null && v !== '')
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v as string | number)}`);
  return parts.length ? `?${parts.join('&')}` : '';
}

interface StreamHandlers {
  signal: AbortSignal;
  onStart: (headers: Headers) => void;
  onChunk: (chunk: Json) => void;
}

// Streams an OpenAI completion (chat or text). Calls onStart(headers) once the response headers
// are in, onChunk(chunk) per data chunk; resolves when data: [DONE] arrives. An error chunk
// (data: {"error": ...}) or an HTTP error rejects with its message.
export async function streamCompletion(
  path: string,
  body: object,
  { signal, onStart, onChunk }: StreamHandlers,
): Promise<void> {
  let res;
  try {
    res = await fetch(apiPath(path), {
      method: 'POST',
      headers: headers(true),
      body: JSON.stringify({ ...body, stream: true }),
      credentials: 'same-origin',
      signal,
    });
  } catch (e) {
    if ((e as Error).name === 'AbortError') throw e;
    throw new Error(`could not reach the API: ${(e as Error).message}`, { cause: e });
  }
  if (!res.ok) throw await errorOf(res);
  onStart(res.headers);
  // A successful response always has a body.
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value.replace(/\r\n/g, '\n');
    let cut;
    while ((cut = buffer.indexOf('\n\n')) >= 0) {
      const event = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      for (const line of event.split('\n')) {
        if (!line.startsWith('data:')) continue;
        const data = line.slice(5).trim();
        if (data === '[DONE]') return;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new ApiError(res.status, chunk.error);
        onChunk(chunk);
      }
    }
  }
  throw new Error('the stream ended before data: [DONE]');
}
