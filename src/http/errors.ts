/**
 * Errors as the whole product answers them: OpenAI's JSON shape
 * `{"error": {"message", "type", "param", "code"}}` with the right 4xx status. Route code throws
 * `ApiError`; the app's error handler turns it (and anything else) into that shape.
 */
export type ErrorStatus = 400 | 401 | 403 | 404 | 409 | 410 | 413 | 415 | 422 | 429 | 500 | 502 | 503 | 504;

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
