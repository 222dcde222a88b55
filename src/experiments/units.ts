import { ApiError } from '../http/errors.ts';

/** Units are stored with every event and aggregate row: bounded, like OpenAI's own limits on `user`. */
export const MAX_UNIT_CHARS = 256;

/**
 * The randomization unit of a request: OpenAI's `user`, else the x-versa-unit header, else the
 * request itself (its completion id): a backend that sends neither is randomized per request,
 * never put in one arm wholesale by its key.
 */
export function experimentUnit(
  user: string | null | undefined,
  header: string | undefined,
  completionId: string,
): { id: string; perRequest: boolean } {
  const unit = user || header;
  if (!unit) return { id: completionId, perRequest: true };
  if (unit.length > MAX_UNIT_CHARS)
    throw new ApiError(
      400,
      `the experiment unit (user or x-versa-unit) is over ${MAX_UNIT_CHARS} characters`,
      'unit_too_long',
      'user',
    );
  return { id: unit, perRequest: false };
}
