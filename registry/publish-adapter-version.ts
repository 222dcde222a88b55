import { z } from '@hono/zod-openapi';
import { ADAPTER_CONFIG_FILE, AdapterFormatError, type AdapterManifest } from '../src/engine/adapters/format.ts';
import { FiniteWeightsCheck } from '../src/engine/adapters/finite.ts';
import { inspectAdapter } from '../src/engine/adapters/read.ts';
import { SafetensorsError, type SafetensorsHeader } from '../src/engine/weights/safetensors.ts';
import type { Principal } from '../src/http/principal.ts';
import { BlobIntegrityError, type BlobStore } from './blobs/store.ts';
import type { Db } from './db/index.ts';
import { behaviorDigest, manifestDigest } from './digest.ts';
import { ApiError, badRequest, tooLarge } from '../src/http/errors.ts';
import type { Limits, RegistryDeps } from './http.ts';
import { MultipartError, readMultipart, type FormPart } from './multipart.ts';
import { ChatTemplateText } from './routes/schemas.ts';
import { AliasName, FILE_NAME_RE, parseRef, Sha256, Tag } from './names.ts';
import { canSee, canWrite, getAdapter, viewerOf } from './queries/adapters.ts';
import { deleteBlobIfUnused, leaseBlob, LEASE_RENEW_MS, releaseLeases, renewLeases } from './queries/blobs.ts';
import { findIdempotencyKey, type IdempotencyKey } from './queries/idempotency.ts';
import { maxAdapterFraction } from './queries/tenants.ts';
import { getBaseModel, getBaseVersion, type BaseVersion } from './queries/models.ts';
import { commitAdapterVersion, getPublishedVersion, type PublishedVersion } from './queries/adapter-versions.ts';
import { isUniqueViolation } from './db/index.ts';
import { sha256Hex } from './hash.ts';
import { VISIBILITIES, type FileEntry } from './schema.ts';
import { checkedSafetensors } from './upload.ts';

/**
 * Publishing an adapter version from a multipart/form-data stream:
 *
 * 1. text fields (`base` first) and small files (adapter_config.json, README.md, ...) are read
 *    within their size limits; the weights part (`*.safetensors`, after `base` and
 *    adapter_config.json) has its header validated from its first bytes, against the base version's
 *    stored ModelConfig with the engine's `inspectAdapter` and against the tenant's size bound
 *    (a fraction of the base's parameters), before a byte of it is stored; its values are checked
 *    finite as they stream;
 * 2. every file streams into the blob store, which hashes it on the way (and checks declared
 *    checksums);
 * 3. one atomic write makes the version visible (queries/adapter-versions.ts).
 *
 * Every blob the upload will commit, created or deduplicated, is leased before it lands or is
 * reused (queries/blobs.ts), and the leases are dropped in the commit's write. Any failure releases
 * them and deletes the blobs no version and no other upload's lease holds, so nothing is left
 * half-published and no other upload loses content. A crash leaves leased blobs whose leases lapse;
 * sweepOrphans removes them afterwards.
 */

const json = <T extends z.ZodType>(schema: T) =>
  z
    .string()
    .transform((text, ctx) => {
      try {
        return JSON.parse(text) as unknown;
      } catch {
        ctx.addIssue({ code: 'custom', message: 'must be valid JSON' });
        return z.NEVER;
      }
    })
    .pipe(schema);

/** Tags: a JSON array, or comma-separated. */
const tagList = z
  .string()
  .transform((text, ctx) => {
    if (!text.trim().startsWith('['))
      return text
        .split(',')
        .map((t) => t.trim())
        .filter(Boolean);
    try {
      return JSON.parse(text) as unknown;
    } catch {
      ctx.addIssue({ code: 'custom', message: 'must be a JSON array or comma-separated tags' });
      return z.NEVER;
    }
  })
  .pipe(z.array(Tag).max(32));

/** The text fields of the publish form. */
const PublishFields = z
  .object({
    base: z.string().min(1).max(200),
    visibility: z.enum(VISIBILITIES).optional(),
    task: z.string().min(1).max(100).optional(),
    description: z.string().max(10_000).optional(),
    chat_template: ChatTemplateText.optional(),
    dataset: z.string().max(10_000).optional(),
    training_notes: z.string().max(100_000).optional(),
    license: z.string().max(200).optional(),
    card: z.string().optional(),
    metrics: json(z.record(z.string(), z.unknown())).optional(),
    tags: tagList.optional(),
    alias: AliasName.optional(),
    checksums: json(z.record(z.string().regex(FILE_NAME_RE), Sha256)).optional(),
  })
  .strict();
type Fields = z.infer<typeof PublishFields>;
const FIELD_NAMES = new Set(Object.keys(PublishFields.shape));

/** What a publish answers: the version made by this request, or by the first with its Idempotency-Key. */
export interface PublishResult extends PublishedVersion {
  alias: string | null;
  /** True when an earlier request with the same Idempotency-Key made the version. */
  replayed: boolean;
}

/**
 * Publishes a new version of adapter `name` from a multipart body. Throws ApiError for everything
 * a client can get wrong (4xx); the registry and the store are then as before.
 */
export async function publishAdapterVersion(
  deps: RegistryDeps,
  principal: Principal,
  name: string,
  body: ReadableStream<Uint8Array>,
  boundary: string,
  idempotencyKey?: string,
): Promise<PublishResult> {
  const { registry, blobs, limits } = deps;
  const viewer = viewerOf(principal);
  // Fail before reading the body when the answer is already known, except for a name another tenant
  // holds privately: until the commit it is treated exactly as a free name (no cheap existence oracle).
  const existing = await getAdapter(registry.db, name);
  if (existing && canSee(viewer, existing) && !canWrite(viewer, existing))
    throw new ApiError(403, `adapter "${name}" belongs to another tenant`, 'not_owner');
  if (!existing && (await getBaseModel(registry.db, name)))
    throw new ApiError(409, `"${name}" is the name of a base model`, 'name_taken');

  if (idempotencyKey) {
    const prior = await findIdempotencyKey(registry.db, principal.tenantId, idempotencyKey);
    // A key names one request: another adapter is refused before its body is read.
    if (prior && prior.adapter !== name) throw keyReused(idempotencyKey);
  }

  const stored: FileEntry[] = [];
  const uploadId = `up_${crypto.randomUUID()}`;
  const leased = new Set<string>();
  const reserve = async (sha256: string) => {
    leased.add(sha256);
    await leaseBlob(registry.db, sha256, uploadId);
  };
  // An upload may outlive a lease's lifetime: keep its leases alive while it runs.
  const renewal = setInterval(() => {
    renewLeases(registry.db, uploadId).catch((e) => console.error('versa: could not renew blob leases:', e));
  }, LEASE_RENEW_MS);
  let done = false;
  try {
    const maxFraction = await maxAdapterFraction(registry.db, principal.tenantId);
    const upload = await receive(registry.db, blobs, limits, maxFraction, body, boundary, stored, reserve);
    const files = [...stored].sort((a, b) => (a.name < b.name ? -1 : 1));
    const sha256 = await manifestDigest(files);
    const f = upload.fields;
    const chatTemplate = f.chat_template ?? null;
    const behaviorSha256 = await behaviorDigest({ sha256, baseSha256: upload.base.sha256, chatTemplate });
    const fingerprint = idempotencyKey ? await requestFingerprint(name, f, sha256) : '';
    for (let attempt = 0; ; attempt++) {
      if (idempotencyKey) {
        const prior = await findIdempotencyKey(registry.db, principal.tenantId, idempotencyKey);
        if (prior) return await replay(registry.db, prior, fingerprint, idempotencyKey, f.alias);
      }
      try {
        const committed = await commitAdapterVersion(
          registry,
          {
            adapter: name,
            tenantId: principal.tenantId,
            keyId: principal.keyId,
            visibility: f.visibility,
            task: f.task,
            description: f.description,
            chatTemplate: f.chat_template,
            behaviorSha256,
            baseVersionId: upload.base.id,
            baseParams: upload.base.params,
            manifest: upload.manifest,
            files,
            sha256,
            dataset: f.dataset,
            trainingNotes: f.training_notes,
            license: f.license,
            card: f.card,
            metrics: f.metrics,
            tags: f.tags,
            alias: f.alias,
            now: deps.now(),
            uploadId,
            idempotency: idempotencyKey ? { key: idempotencyKey, fingerprint } : undefined,
          },
          (row) => {
            // The adapter may have been created by someone else since the first check.
            if (row && !canWrite(viewer, row)) {
              throw canSee(viewer, row)
                ? new ApiError(403, `adapter "${name}" belongs to another tenant`, 'not_owner')
                : new ApiError(404, `adapter "${name}" not found`, 'adapter_not_found');
            }
          },
        );
        done = true;
        return {
          adapter: name,
          version: committed.version,
          sha256,
          behaviorSha256,
          bytes: committed.bytes,
          params: upload.manifest.params,
          paramsPctOfBase: committed.paramsPctOfBase,
          base: `${upload.base.model}@${upload.base.version}`,
          kind: upload.manifest.kind,
          files,
          alias: f.alias ?? null,
          replayed: false,
        };
      } catch (e) {
        // The same key committed by a concurrent request: answer its version.
        if (idempotencyKey && attempt === 0 && isUniqueViolation(e)) continue;
        throw e;
      }
    }
  } catch (e) {
    throw asApiError(e);
  } finally {
    clearInterval(renewal);
    // A replay also ends here: its blobs are the first version's, which keeps them.
    if (!done) await discardUpload(registry.db, blobs, uploadId, leased);
  }
}

const keyReused = (key: string) =>
  new ApiError(
    422,
    `Idempotency-Key "${key}" was already used for a different publish request; use a new key for a new request`,
    'idempotency_key_reused',
    'Idempotency-Key',
  );

/** What a request asks for, so that a reused key can be told from a retry: adapter, fields and content. */
function requestFingerprint(adapter: string, fields: Fields, contentSha256: string): Promise<string> {
  const sorted = Object.fromEntries(Object.entries(fields).sort(([a], [b]) => (a < b ? -1 : 1)));
  return sha256Hex(JSON.stringify([adapter, sorted, contentSha256]));
}

async function replay(
  db: Db,
  prior: IdempotencyKey,
  fingerprint: string,
  key: string,
  alias: string | undefined,
): Promise<PublishResult> {
  if (prior.fingerprint !== fingerprint) throw keyReused(key);
  const version = await getPublishedVersion(db, prior.versionId);
  return { ...version, alias: alias ?? null, replayed: true };
}

interface Received {
  fields: Fields;
  base: BaseVersion;
  manifest: AdapterManifest;
}

async function receive(
  db: Db,
  blobs: BlobStore,
  limits: Limits,
  maxFraction: number,
  body: ReadableStream<Uint8Array>,
  boundary: string,
  stored: FileEntry[],
  reserve: Reserve,
): Promise<Received> {
  const raw: Record<string, string> = {};
  let base: BaseVersion | undefined;
  let config: Record<string, unknown> | undefined;
  let header: SafetensorsHeader | undefined;
  let weightsName: string | undefined;
  const names = new Set<string>();
  let checksums: Record<string, string> = {};

  for await (const part of readMultipart(body, boundary, { maxParts: limits.maxFiles + FIELD_NAMES.size })) {
    if (part.filename === undefined) {
      // A text field: checked as soon as it arrives, so a bad one fails before any file is stored.
      if (!FIELD_NAMES.has(part.name))
        throw badRequest(
          `unknown field "${part.name}" (fields: ${[...FIELD_NAMES].join(', ')})`,
          'unknown_field',
          part.name,
        );
      if (part.name in raw) throw badRequest(`field "${part.name}" is given twice`, 'duplicate_field', part.name);
      const value = new TextDecoder('utf-8', { fatal: true }).decode(
        await readAll(part.body, limits.maxFieldBytes, `field "${part.name}"`),
      );
      raw[part.name] = value;
      const parsed = PublishFields.shape[part.name as keyof Fields].safeParse(value);
      if (!parsed.success)
        throw badRequest(
          `field "${part.name}": ${parsed.error.issues[0]?.message ?? 'invalid'}`,
          'validation_error',
          part.name,
        );
      if (part.name === 'base') base = await findBase(db, value);
      if (part.name === 'checksums') checksums = parsed.data as Record<string, string>;
      continue;
    }
    const fileName = part.filename;
    if (!FILE_NAME_RE.test(fileName)) {
      throw badRequest(
        `file name ${JSON.stringify(fileName).slice(0, 140)} is not allowed: ` +
          'a plain name (letters, digits, ".", "_", "-"), no path',
        'invalid_file_name',
        'filename',
      );
    }
    if (names.has(fileName)) throw badRequest(`file "${fileName}" is given twice`, 'duplicate_file', fileName);
    if (names.size >= limits.maxFiles) throw tooLarge(`more than ${limits.maxFiles} files`);
    names.add(fileName);
    const expected = checksums[fileName];

    if (fileName.endsWith('.safetensors')) {
      if (weightsName)
        throw badRequest(
          `only one .safetensors file per version (got "${weightsName}" and "${fileName}")`,
          'invalid_adapter',
          fileName,
        );
      if (!base) throw badRequest('send the "base" field before the weights file', 'part_order', 'base');
      const baseVersion = base;
      weightsName = fileName;
      let finite: FiniteWeightsCheck | undefined;
      const checked = checkedSafetensors(part.body, {
        maxHeaderBytes: limits.maxHeaderBytes,
        maxBytes: limits.maxWeightsBytes,
        onHeader: (h) => {
          header = h;
          // Shapes, names, dtypes, task tokens and size against the base, before anything is stored.
          const manifest = inspectAdapter(config, h, [...names], baseVersion.config);
          checkAdapterSize(manifest.params, baseVersion, maxFraction, fileName);
          finite = new FiniteWeightsCheck(h);
        },
        onData: (bytes) => finite!.update(bytes),
      });
      await store(blobs, fileName, checked, expected, stored, reserve);
    } else {
      if (/\.(bin|pt|pth|ckpt|pkl)$/i.test(fileName)) {
        throw badRequest(
          `"${fileName}": pickled weights are refused; convert the adapter to safetensors`,
          'invalid_adapter',
          fileName,
        );
      }
      const bytes = await readAll(part.body, limits.maxSmallFileBytes, `file "${fileName}"`);
      if (fileName === ADAPTER_CONFIG_FILE) {
        if (weightsName)
          throw badRequest(`send ${ADAPTER_CONFIG_FILE} before the weights file`, 'part_order', fileName);
        config = parseConfig(bytes);
      }
      await store(blobs, fileName, bytes, expected, stored, reserve);
    }
  }

  const fieldsResult = PublishFields.safeParse(raw);
  if (!fieldsResult.success) {
    const issue = fieldsResult.error.issues[0];
    throw badRequest(
      `field "${issue.path.join('.')}": ${issue.message}`,
      'validation_error',
      issue.path.join('.') || null,
    );
  }
  if (!base) throw badRequest('the "base" field (MODEL@VERSION) is required', 'validation_error', 'base');
  if (!weightsName || !header)
    throw badRequest(
      'no weights file: send adapter.safetensors (VLM) or adapter_model.safetensors (PEFT LoRA)',
      'invalid_adapter',
    );
  const manifest = inspectAdapter(config, header, [...names], base.config);
  if (manifest.weightsFile !== weightsName) {
    throw badRequest(
      `a ${manifest.kind} adapter's weights must be named ${manifest.weightsFile}, not ${weightsName}`,
      'invalid_adapter',
      weightsName,
    );
  }
  for (const [file, sha] of Object.entries(fieldsResult.data.checksums ?? {})) {
    const entry = stored.find((s) => s.name === file);
    if (!entry) throw badRequest(`checksums names "${file}", which was not uploaded`, 'checksum_mismatch', 'checksums');
    if (entry.sha256 !== sha) throw new BlobIntegrityError(sha, entry.sha256);
  }
  return { fields: fieldsResult.data, base, manifest };
}

type Reserve = (sha256: string) => Promise<void>;

/** Refuses an adapter larger than the tenant's bound: a fraction of its base's parameters. */
function checkAdapterSize(params: number, base: BaseVersion, maxFraction: number, file: string): void {
  const bound = Math.floor(maxFraction * base.params);
  if (params <= bound) return;
  const n = (x: number) => x.toLocaleString('en-US');
  const percent = +(maxFraction * 100).toPrecision(6);
  throw badRequest(
    `adapter rejected: it has ${n(params)} parameters, more than this tenant's bound of ${n(bound)} ` +
      `(${percent}% of the ${n(base.params)} parameters of ${base.model}@${base.version}); ` +
      "an operator can change the bound (the tenant's max_adapter_fraction)",
    'adapter_too_large',
    file,
  );
}

async function store(
  blobs: BlobStore,
  name: string,
  body: ReadableStream<Uint8Array> | Uint8Array,
  expected: string | undefined,
  stored: FileEntry[],
  reserve: Reserve,
): Promise<void> {
  const blob = await blobs.put(body, { sha256: expected, reserve });
  stored.push({ name, sha256: blob.sha256, bytes: blob.bytes });
}

async function findBase(db: Db, value: string): Promise<BaseVersion> {
  const ref = parseRef(value);
  if (!ref || ref.alias !== undefined)
    throw badRequest(
      `"base" must be MODEL@VERSION (got ${JSON.stringify(value).slice(0, 100)})`,
      'validation_error',
      'base',
    );
  const base = await getBaseVersion(db, ref.name, ref.version);
  if (!base) throw badRequest(`base model version ${value} is not registered`, 'base_not_found', 'base');
  if (base.status === 'yanked')
    throw badRequest(`base model version ${base.model}@${base.version} is yanked`, 'base_yanked', 'base');
  return base;
}

function parseConfig(bytes: Uint8Array): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    throw badRequest(`${ADAPTER_CONFIG_FILE} is not valid JSON`, 'invalid_adapter', ADAPTER_CONFIG_FILE);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw badRequest(`${ADAPTER_CONFIG_FILE} must be a JSON object`, 'invalid_adapter', ADAPTER_CONFIG_FILE);
  return value as Record<string, unknown>;
}

/** Reads a small part whole, refusing it (413) past `max` bytes. */
async function readAll(stream: FormPart['body'], max: number, what: string): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = stream.getReader();
  try {
    for (;;) {
      const r = await reader.read();
      if (r.done) break;
      total += r.value.length;
      if (total > max) throw tooLarge(`${what} is larger than the ${max}-byte limit`);
      chunks.push(r.value);
    }
  } finally {
    reader.releaseLock();
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/**
 * Ends an upload that did not commit: drops its leases, then deletes each blob it leased unless a
 * version or another upload's live lease holds it (checked atomically with the delete).
 */
async function discardUpload(db: Db, blobs: BlobStore, uploadId: string, leased: Set<string>): Promise<void> {
  try {
    await releaseLeases(db, uploadId);
  } catch (e) {
    // Its leases lapse on their own; the sweeper then removes what nothing holds.
    console.error('versa: could not release blob leases:', e);
    return;
  }
  for (const sha256 of leased) {
    try {
      await deleteBlobIfUnused(db, blobs, sha256);
    } catch (e) {
      // The sweeper gets it later; the client's error matters more than this one.
      console.error(`versa: could not discard blob ${sha256}:`, e);
    }
  }
}

/** What a client can get wrong, as the 4xx it deserves; anything else stays a 500. */
function asApiError(e: unknown): unknown {
  if (e instanceof ApiError) return e;
  if (e instanceof SafetensorsError)
    return new ApiError(400, `invalid safetensors file: ${e.message}`, 'invalid_safetensors');
  if (e instanceof AdapterFormatError) return new ApiError(400, `adapter rejected: ${e.message}`, 'invalid_adapter');
  if (e instanceof MultipartError)
    return new ApiError(400, `malformed multipart body: ${e.message}`, 'invalid_multipart');
  if (e instanceof BlobIntegrityError)
    return new ApiError(400, `checksum mismatch: ${e.message}`, 'checksum_mismatch', 'checksums');
  if (e instanceof TypeError && /decode|utf-?8|encoded data/i.test(e.message))
    return new ApiError(400, 'a text field is not valid UTF-8', 'invalid_encoding');
  return e;
}
