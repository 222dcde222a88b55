import { ApiError } from '../src/http/errors.ts';
import { z } from '@hono/zod-openapi';

/**
 * The shapes of every name that reaches the registry from outside. Names never become paths (blobs
 * are addressed by sha256), but they appear in URLs and in the `model` grammar, so `@`, `/` and
 * other path characters are refused outright.
 */
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;
/** Aliases start with a letter so that `NAME@3` (a version) and `NAME@prod` (an alias) never collide. */
const ALIAS_RE = /^[a-z][a-z0-9_-]{0,63}$/;
const TENANT_RE = /^[a-z0-9][a-z0-9_-]{0,62}$/;
export const FILE_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const TAG_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;
export const SHA256_RE = /^[0-9a-f]{64}$/;

const named = (re: RegExp, what: string) => z.string().regex(re, `must be a ${what} (${re.source})`);

export const Name = named(NAME_RE, 'name: letters, digits, ".", "_", "-"; no "/" or "@"');
export const AliasName = named(ALIAS_RE, 'alias: a lowercase letter, then lowercase letters, digits, "_", "-"');
export const TenantId = named(TENANT_RE, 'tenant id: lowercase letters, digits, "_", "-"');
export const FileName = named(FILE_NAME_RE, 'file name without any path');
export const Tag = named(TAG_RE, 'tag');
export const Sha256 = named(SHA256_RE, 'lowercase hex sha256');
export const VersionNumber = z.coerce
  .number()
  .int()
  .positive()
  .max(2 ** 31);

/** `NAME`, `NAME@VERSION` or `NAME@ALIAS`. */
export type Ref = { name: string; version?: number; alias?: string };

export function parseRef(ref: string): Ref | null {
  const at = ref.indexOf('@');
  const name = at < 0 ? ref : ref.slice(0, at);
  if (!NAME_RE.test(name)) return null;
  if (at < 0) return { name };
  const rest = ref.slice(at + 1);
  if (/^[1-9]\d{0,9}$/.test(rest)) return { name, version: Number(rest) };
  if (ALIAS_RE.test(rest)) return { name, alias: rest };
  return null;
}

export function formatRef(name: string, version: number): string {
  return `${name}@${version}`;
}

/** A model string that is not of the grammar (400, naming the field). */
export const invalidRef = (ref: string) =>
  new ApiError(
    400,
    `"${ref}" is not a model: use BASE[@VERSION], ADAPTER, ADAPTER@VERSION or ADAPTER@ALIAS`,
    'invalid_model_ref',
    'model',
  );

/**
 * What serving a version of `status` means, in the product's one set of words: a yanked version
 * is refused (410), a deprecated one is served with a warning.
 */
export function servingCheck(name: string, version: number, status: string): { warning?: string } {
  const ref = formatRef(name, version);
  if (status === 'yanked')
    throw new ApiError(410, `${ref} was yanked and is no longer served`, 'version_yanked', 'model');
  return status === 'deprecated' ? { warning: `${ref} is deprecated` } : {};
}
