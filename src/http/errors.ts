/**
 * Errors as the whole product answers them: OpenAI's JSON shape
 * `{"error": {"message", "type", "param", "code"}}` with the right 4xx status. Route code throws
 * `ApiError`; the app's error handler turns it (and anything else) into that shape.
 */
export type ErrorStatus = 400 | 401 | 403 | 404 | 409 | 410 | 413 | 415 | 422 | 429 | 500 | 502 | 503 | 504 | 507;

const TYPES: Record<number, string> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  403: 'permission_error',
  404: 'not_found_error',
  409: 'conflict_error',
  410: 'gone_error',
  413: 'invalid_request_error',
  415: 'invalid_request_error',
  422: 'invalid_request_error',
  429: 'rate_limit_error',
};

export interface ErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

export class ApiError extends Error {
  override name = 'ApiError';
  constructor(
    readonly status: ErrorStatus,
    message: string,
    readonly code: string | null = null,
    readonly param: string | null = null,
  ) {
    super(message);
  }

  get body(): ErrorBody {
    return errorBody(this.status, this.message, this.code, this.param);
  }
}

export function errorBody(
  status: number,
  message: string,
  code: string | null = null,
  param: string | null = null,
): ErrorBody {
  return {
    error: { message, type: TYPES[status] ?? (status >= 500 ? 'server_error' : 'invalid_request_error'), param, code },
  };
}

export const badRequest = (message: string, code = 'invalid_request', param: string | null = null) =>
  new ApiError(400, message, code, param);
export const notFound = (message: string, code = 'not_found') => new ApiError(404, message, code);
export const conflict = (message: string, code = 'conflict') => new ApiError(409, message, code);
export const tooLarge = (message: string, param: string | null = null) =>
  new ApiError(413, message, 'payload_too_large', param);

/** Storage errors a write can meet, by the code that names them (errno, or SQLite's). */
const STORAGE_FULL: Record<string, string> = {
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  EFBIG: 'file too large for the filesystem',
  SQLITE_FULL: 'the database or its disk is full',
};

/**
 * A full disk (or quota) anywhere below a write, as the 507 it is: a message naming the cause,
 * not a bare 500. Looks at the error and its causes: Node's errno `code`, better-sqlite3's
 * `SQLITE_FULL`, and D1's message text. Null for anything else.
 */
export function storageFullError(e: unknown): ApiError | null {
  for (let err = e, depth = 0; err && depth < 5; depth++, err = (err as { cause?: unknown }).cause) {
    const code = (err as { code?: unknown }).code;
    const message = err instanceof Error ? err.message : String(err);
    const named =
      typeof code === 'string' && code in STORAGE_FULL
        ? code
        : (/\b(ENOSPC|EDQUOT|EFBIG|SQLITE_FULL)\b/.exec(message)?.[1] ??
          (/database or disk is full/i.test(message) ? 'SQLITE_FULL' : undefined));
    if (named)
      return new ApiError(
        507,
        `registry storage is full (${named}: ${STORAGE_FULL[named]}): the request changed nothing; ` +
          'free space or raise the quota, then retry',
        'storage_full',
      );
  }
  return null;
}
