import { mkdirSync, renameSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { nodeHasher } from '../../../registry/hash-node.ts';
import { clientOf, formatBytes, progress, withRegistryOptions, type RegistryOptions } from './registry-options.ts';
import { warn } from '../output.ts';
import { FILE_NAME_RE, formatRef } from '../../../registry/names.ts';

export function register(program: Command): void {
  withRegistryOptions(
    program
      .command('pull')
      .description('download an adapter version (NAME, NAME@VERSION or NAME@ALIAS), checking every sha256')
      .argument('<ref>')
      .option('--out <dir>', 'where to put the files (default ./NAME@VERSION)'),
  ).action(run);
}

async function run(ref: string, o: RegistryOptions & { out?: string }): Promise<void> {
  const client = clientOf(o);
  const v = await client.json('GET', `/v1/resolve?model=${encodeURIComponent(ref)}`);
  if (v.warning) warn(v.warning);
  // What a registry sends names files and folders here: only plain names, nothing that leaves `dir`.
  const plain = (name: unknown) => typeof name === 'string' && FILE_NAME_RE.test(name);
  if (!plain(v.adapter) || !Number.isInteger(v.version))
    throw new Error(`the registry answered an invalid version for ${ref}`);
  const files = v.files as Array<{ name: string; sha256: string; bytes: number }>;
  const bad = files.find((f) => !plain(f.name));
  if (bad)
    throw new Error(`the registry sent a file name that is not a plain name: ${JSON.stringify(bad.name).slice(0, 80)}`);
  const dir = resolve(o.out ?? formatRef(v.adapter, v.version));
  mkdirSync(dir, { recursive: true });
  const total = files.reduce((n, f) => n + f.bytes, 0);
  const bar = progress('download', total);
  let done = 0;
  for (const f of files) {
    const res = await client.request(
      'GET',
      `/v1/adapters/${encodeURIComponent(v.adapter)}/versions/${v.version}/files/${encodeURIComponent(f.name)}`,
    );
    const partial = join(dir, `.${f.name}.partial`);
    const out = await open(partial, 'w');
    const hasher = nodeHasher();
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        hasher.update(chunk);
        await out.write(chunk);
        done += chunk.length;
        bar.update(done);
      }
    } finally {
      await out.close();
    }
    const sha256 = await hasher.digest();
    if (sha256 !== f.sha256) {
      rmSync(partial, { force: true });
      throw new Error(`${f.name}: downloaded content has sha256 ${sha256}, the registry says ${f.sha256}`);
    }
    renameSync(partial, join(dir, f.name));
  }
  bar.stop();
  if (o.json)
    process.stdout.write(
      `${JSON.stringify({ adapter: v.adapter, version: v.version, sha256: v.sha256, dir, files })}\n`,
    );
  else
    process.stdout.write(
      `pulled ${v.adapter}@${v.version} (${files.length} files, ${formatBytes(total)}, ` +
        `sha256 ${v.sha256}) into ${dir}\n`,
    );
}
