import {
  closeSync,
  constants,
  createReadStream,
  fstatSync,
  lstatSync,
  openSync,
  readFileSync,
  statSync,
} from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { ADAPTER_CONFIG_FILE, detectKind, LORA_WEIGHTS_FILE, VLM_WEIGHTS_FILE } from '../src/engine/adapters/format.ts';
import { inspectModel } from '../src/engine/loaders/load.ts';
import { hashFiles as hashModelFiles, type Progress } from '../src/engine/weights/identity.ts';
import { chatTemplateNextTo, locateTokenizer } from '../src/engine/tokenizer/load.ts';
import type { RegistryClient, UploadPart } from './client.ts';
import type { PublishResponse } from './routes/adapter-upload.ts';
import type { RegistryDb } from './db/index.ts';
import { registerBaseVersion, type BaseVersionInput, type RegisteredBaseVersion } from './queries/models.ts';
import { tenants, type FileEntry } from './schema.ts';

/**
 * Node-only helpers that turn local folders into what the registry stores: a base model's metadata
 * (hashing its files) and an adapter folder's file list.
 */

/** Hashes files one after another, reporting bytes hashed over all of them (as a compute node hashes its base). */
const hashFiles = (paths: string[], onProgress?: Progress): Promise<FileEntry[]> =>
  hashModelFiles(paths, { onProgress });

/**
 * Describes a local model (Hugging Face folder or llama2.c checkpoint) as a base model version:
 * config read with the engine's inspectModel (no weights loaded), every file hashed.
 */
export async function describeLocalModel(
  path: string,
  options: { tokenizer?: string; onProgress?: Progress } = {},
): Promise<BaseVersionInput> {
  const { config, files: paths } = inspectModel(path);
  const tok = locateTokenizer(path, options.tokenizer);
  const toHash = tok && !paths.includes(tok.path) ? [...paths, tok.path] : paths;
  const hashed = await hashFiles(toHash, options.onProgress);
  const files = hashed.slice(0, paths.length);
  const tokFile = tok ? hashed[toHash.indexOf(tok.path)] : undefined;
  // The chat template the tokenizer ships (tokenizer_config.json): the base's, for /v1/chat/completions.
  const chatTemplate = tok?.kind === 'hf' ? chatTemplateNextTo(tok.path) : undefined;
  return {
    architecture: config.architecture,
    config,
    tokenizer:
      tokFile && tok
        ? {
            kind: tok.kind,
            file: tokFile.name,
            sha256: tokFile.sha256,
            bytes: tokFile.bytes,
            ...(chatTemplate ? { chat_template: chatTemplate } : {}),
          }
        : null,
    files,
  };
}

/**
 * Registers a local model in-process (no HTTP): what `versa import` does through the API, for
 * `npm start` to call on its own registry. Creates the model if new, else adds a version.
 */
export async function importLocalModel(
  registry: RegistryDb,
  options: { path: string; name: string; tokenizer?: string; tenantId?: string; keyId?: string; onProgress?: Progress },
): Promise<RegisteredBaseVersion> {
  const input = await describeLocalModel(options.path, {
    tokenizer: options.tokenizer,
    onProgress: options.onProgress,
  });
  const tenantId = options.tenantId ?? 'default';
  await registry.db
    .insert(tenants)
    .values({ id: tenantId, name: tenantId, createdAt: new Date() })
    .onConflictDoNothing();
  return registerBaseVersion(registry, options.name, input, { tenantId, keyId: options.keyId });
}

export interface LocalAdapterFile {
  name: string;
  path: string;
  bytes: number;
}

/** The files of an adapter folder that publishing reads: what it uploads, and where its chat template may be. */
const FOLDER_FILES = [
  ADAPTER_CONFIG_FILE,
  VLM_WEIGHTS_FILE,
  LORA_WEIGHTS_FILE,
  'README.md',
  'chat_template.jinja',
  'tokenizer_config.json',
];

/**
 * Opens a file of an adapter folder for reading: a regular file, never a symbolic link (it could
 * publish a file from outside the folder) nor a device or pipe. O_NOFOLLOW refuses a link swapped
 * in after the folder was checked; the open descriptor is what gets read.
 */
function openFolderFile(path: string): number {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0) | (constants.O_NONBLOCK ?? 0));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ELOOP') throw notRegular(path, 'a symbolic link');
    throw e;
  }
  if (!fstatSync(fd).isFile()) {
    closeSync(fd);
    throw notRegular(path, 'not a regular file');
  }
  return fd;
}

const notRegular = (path: string, what: string) =>
  new Error(`${path} is ${what}: versa publish reads only regular files in the adapter folder (copy the file in)`);

/**
 * The files of a local adapter folder (PEFT LoRA or VLM, as the engine reads them) in upload order:
 * adapter_config.json, README.md, then the weights. Any of the files publishing reads that is a
 * symbolic link or not a regular file is refused.
 */
export function adapterFolderFiles(dir: string): LocalAdapterFile[] {
  if (!statSync(dir, { throwIfNoEntry: false })?.isDirectory()) throw new Error(`${dir} is not a folder`);
  const present = new Set<string>();
  for (const name of FOLDER_FILES) {
    const entry = lstatSync(join(dir, name), { throwIfNoEntry: false });
    if (!entry) continue;
    if (entry.isSymbolicLink()) throw notRegular(join(dir, name), 'a symbolic link');
    if (!entry.isFile()) throw notRegular(join(dir, name), 'not a regular file');
    present.add(name);
  }
  const config = present.has(ADAPTER_CONFIG_FILE)
    ? (JSON.parse(readFolderFile(join(dir, ADAPTER_CONFIG_FILE))) as Record<string, unknown>)
    : undefined;
  const kind = detectKind(config, [...present]);
  const weights = kind === 'vlm' ? VLM_WEIGHTS_FILE : LORA_WEIGHTS_FILE;
  if (!present.has(weights)) throw new Error(`${dir}: no ${weights}`);
  const order = [ADAPTER_CONFIG_FILE, 'README.md', weights].filter((name) => present.has(name));
  return order.map((name) => ({ name, path: join(dir, name), bytes: lstatSync(join(dir, name)).size }));
}

function readFolderFile(path: string): string {
  const fd = openFolderFile(path);
  try {
    return readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
}

function fileStream(path: string): ReadableStream<Uint8Array> {
  const stream = createReadStream(path, { fd: openFolderFile(path), highWaterMark: 1 << 20 });
  return Readable.toWeb(stream) as unknown as ReadableStream<Uint8Array>;
}

/** The publish form's text fields (see routes/adapter-upload.ts). */
export interface PublishFolderFields {
  base: string;
  alias?: string;
  visibility?: string;
  task?: string;
  description?: string;
  chat_template?: string;
  dataset?: string;
  license?: string;
  training_notes?: string;
  card?: string;
  metrics?: string;
  tags?: string;
}

/**
 * Publishes a local adapter folder as a new version: hashes the files (the registry refuses the
 * upload unless it stores exactly these bytes), then streams the multipart form.
 */
export async function publishFolder(
  client: RegistryClient,
  dir: string,
  name: string,
  fields: PublishFolderFields,
  progress: { hashing?: (done: number) => void; uploading?: (sent: number) => void } = {},
): Promise<PublishResponse> {
  const files = adapterFolderFiles(dir);
  const hashes = await hashFiles(
    files.map((f) => f.path),
    (done) => progress.hashing?.(done),
  );
  const readme = files.find((f) => f.name === 'README.md');
  const all: Record<string, string | undefined> = {
    ...fields,
    // A template travels with the version: the folder's own (tokenizer_config.json) unless one is given.
    chat_template: fields.chat_template ?? chatTemplateNextTo(dir),
    card: fields.card ?? (readme ? readFolderFile(readme.path) : undefined),
    checksums: JSON.stringify(Object.fromEntries(hashes.map((h) => [h.name, h.sha256]))),
  };
  const parts: UploadPart[] = [
    ...Object.entries(all)
      .filter((e): e is [string, string] => e[1] !== undefined)
      .map(([field, value]) => ({ field, value })),
    ...files.map((f) => ({ file: f.name, bytes: f.bytes, open: () => fileStream(f.path) })),
  ];
  // One key for every attempt: a retry after a lost reply gets the version already made.
  return client.upload<PublishResponse>(`/v1/adapters/${encodeURIComponent(name)}/versions`, parts, {
    onProgress: progress.uploading,
    idempotencyKey: `versa-publish-${crypto.randomUUID()}`,
  });
}
