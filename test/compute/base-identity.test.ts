import { copyFileSync, mkdtempSync, readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { manifestDigest } from '../../registry/digest.ts';
import { describeLocalModel } from '../../registry/local.ts';
import { modelSha256 } from '../../src/engine/weights/identity.ts';
import { fixture } from '../helpers/fixtures.ts';

/** A compute node's base identity is the registry's base version sha256 of the same files. */
describe("a model's sha256", () => {
  it('is what the registry assigns the same files, for a checkpoint and a Hugging Face folder', async () => {
    for (const path of [fixture('stories260k/model.bin'), fixture('tiny-gpt2')]) {
      const registry = await manifestDigest((await describeLocalModel(path)).files);
      expect(await modelSha256(path), path).toBe(registry);
    }
  });

  it('is kept in a cache folder, and computed again once a file changes, even at the same size and time', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'versa-identity-'));
    const model = join(dir, 'model.bin');
    copyFileSync(fixture('stories260k/model.bin'), model);
    const cacheDir = join(dir, 'cache');
    const first = await modelSha256(model, { cacheDir });
    expect(readdirSync(cacheDir)).toHaveLength(1);
    expect(await modelSha256(model, { cacheDir })).toBe(first);
    // Other bytes, same size, the old modification time put back: the cache must not answer.
    const { atime, mtime } = statSync(model);
    const bytes = readFileSync(model);
    bytes[bytes.length - 1] ^= 0xff;
    writeFileSync(model, bytes);
    utimesSync(model, atime, mtime);
    const changed = await modelSha256(model, { cacheDir });
    expect(changed).not.toBe(first);
    expect(changed).toBe(await modelSha256(model));
  });
});
