import { existsSync, readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import { z } from 'zod';
import { AdapterRef, describeIssue } from '../../protocol/compute.ts';
import { assertPortFree } from '../../http/listen.ts';
import type { AdapterKind } from '../../engine/adapters/format.ts';
import { parse } from '../output.ts';
import { runtimeOf } from '../../engine/runtime-options.ts';
import { weightCacheFromEnv } from '../../engine/weights/cache.ts';
import { addRuntimeOptions, type RuntimeOptions } from './runtime-options.ts';
import { onStopSignal } from '../stop-signals.ts';

interface ComputeOptions extends RuntimeOptions {
  model: string;
  tokenizer?: string;
  port: number;
  host: string;
  adapterCacheMb: number;
  adapterKinds: AdapterKind[];
  maxBatch: number;
  maxQueue?: number;
  tokenFile?: string;
  blobs?: string;
  registry?: string;
  registryKey?: string;
  preload?: string;
  drainSeconds: number;
  name?: { name: string; version?: number };
  tlsCert?: string;
  tlsKey?: string;
}

export function register(program: Command): void {
  const command = program
    .command('compute')
    .description('run a compute node: one base model, many adapters decoded in the same batch')
    .requiredOption('--model <path>', 'Hugging Face model folder or llama2.c checkpoint (.bin)')
    .option('--name <base[@version]>', "the registry's name of this base, reported with its sha256", baseName)
    .option('--tokenizer <path>', 'tokenizer.json, its folder, or llama2.c tokenizer.bin (default: next to the model)')
    .option('--port <n>', 'port to listen on', parse.int(0), 8788)
    .option('--host <addr>', 'address to listen on', '127.0.0.1')
    .option('--adapter-cache-mb <n>', 'memory budget for resident adapters', parse.int(1), 1024)
    .option(
      '--adapter-kinds <kinds>',
      'adapter kinds to serve: vlm,lora (default), vlm, lora or none',
      parse.adapterKinds,
      ['vlm', 'lora'],
    )
    .option('--max-batch <n>', 'rows decoded together', parse.int(1), 64)
    .option('--max-queue <n>', 'requests that may wait for a row before 429 (default 4 x max batch)', parse.int(0))
    .option('--token-file <file>', 'file holding the token callers must send (default: $VERSA_COMPUTE_TOKEN)')
    .option('--blobs <dir>', "the registry's blob folder, to read adapter files from directly")
    .option('--registry <url>', 'the registry to download adapter files from (default: $VERSA_REGISTRY)')
    .option('--registry-key <key>', "this node's read-only registry key (default: $VERSA_REGISTRY_KEY)")
    .option('--preload <file.json>', 'adapters to load at start: a JSON list of {id, sha256, files}')
    .option('--drain-seconds <n>', 'on SIGTERM, let running streams finish this long', parse.int(0), 30)
    .option('--tls-cert <file>', 'serve HTTPS with this certificate (PEM; with --tls-key)')
    .option('--tls-key <file>', "the certificate's private key (PEM)");
  addRuntimeOptions(command).action(run);
}

async function run(o: ComputeOptions): Promise<void> {
  const { checkedToken, startComputeNode } = await import('../../compute/node.ts');
  // Refused before minutes of model loading: a node without a token answers nobody.
  const token = checkedToken(o.tokenFile ? readFileSync(o.tokenFile, 'utf8').trim() : process.env.VERSA_COMPUTE_TOKEN);
  const { FolderBlobStore } = await import('../../../registry/blobs/folder.ts');
  const log = (line: string) => process.stderr.write(`versa compute: ${line}\n`);
  const registry = o.registry ?? process.env.VERSA_REGISTRY;
  if (registry && !URL.canParse(registry)) throw new Error(`--registry / VERSA_REGISTRY is not a URL: "${registry}"`);
  if (o.blobs && !(existsSync(o.blobs) && statSync(o.blobs).isDirectory()))
    throw new Error(`--blobs ${o.blobs} is not a folder`);
  const preload = o.preload ? readPreload(o.preload) : undefined;
  const tls = readTls(o.tlsCert, o.tlsKey);
  await assertPortFree(o.port, o.host);
  const node = await startComputeNode({
    model: o.model,
    tokenizer: o.tokenizer,
    port: o.port,
    host: o.host,
    ...runtimeOf(o),
    weightCache: weightCacheFromEnv(),
    adapterCacheMb: o.adapterCacheMb,
    adapterKinds: o.adapterKinds,
    maxBatch: o.maxBatch,
    maxQueue: o.maxQueue,
    token,
    blobs: o.blobs ? new FolderBlobStore(o.blobs) : undefined,
    registry,
    registryKey: o.registryKey ?? process.env.VERSA_REGISTRY_KEY,
    preload,
    base: o.name,
    digestCache: join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'versa', 'digests'),
    tls,
    log,
  });
  // Before the announcement: whoever reads it may stop this process at once.
  onStopSignal((signal) => {
    log(`${signal}: draining (up to ${o.drainSeconds}s)`);
    return node.shutdown(o.drainSeconds * 1000);
  });
  process.stdout.write(`${node.url}\n`);
}

/** --name NAME or NAME@VERSION. */
function baseName(value: string): { name: string; version?: number } {
  const m = /^([^@\s]+)(?:@([1-9]\d*))?$/.exec(value.trim());
  if (!m) throw new InvalidArgumentError('expected NAME or NAME@VERSION');
  return { name: m[1], ...(m[2] ? { version: Number(m[2]) } : {}) };
}

/** The certificate and key for HTTPS, both or neither. */
function readTls(cert: string | undefined, key: string | undefined) {
  if (!cert && !key) return undefined;
  if (!cert || !key) throw new Error('--tls-cert and --tls-key go together');
  const read = (flag: string, path: string) => {
    try {
      return readFileSync(path);
    } catch (e) {
      throw new Error(`${flag} ${path}: ${(e as Error).message}`, { cause: e });
    }
  };
  return { cert: read('--tls-cert', cert), key: read('--tls-key', key) };
}

/** The --preload list, checked against the compute protocol's adapter schema before the model loads. */
function readPreload(path: string): AdapterRef[] {
  let list: unknown;
  try {
    list = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new Error(`--preload ${path}: ${(e as Error).message}`, { cause: e });
  }
  const parsed = z.array(AdapterRef).safeParse(list);
  if (parsed.success) return parsed.data;
  const { message, param } = describeIssue(parsed.error);
  throw new Error(`--preload ${path}: ${param ? `${param}: ` : ''}${message}`);
}
