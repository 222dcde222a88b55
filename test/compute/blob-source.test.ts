import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FolderBlobStore } from '../../registry/blobs/folder.ts';
import { firstOf, registrySource, storeSource } from '../../src/compute/blob-source.ts';
import { freePort } from '../helpers/compute.ts';

describe('adapter file sources', () => {
  it('when every source fails, the error says why each did (the local folder first)', async () => {
    const folder = new FolderBlobStore(mkdtempSync(join(tmpdir(), 'versa-blobs-')));
    const closed = `http://127.0.0.1:${await freePort()}`; // nothing listens there
    const source = firstOf(storeSource(folder), registrySource(closed, 'vsk_node-read-key'));
    const file = { name: 'adapter_model.safetensors', sha256: 'a'.repeat(64), bytes: 10 };
    const read = source.read({ id: 'writer@1', sha256: 'b'.repeat(64), files: [file] }, file);
    await expect(read).rejects.toThrow(
      /blob a{64} \(adapter_model\.safetensors\) is not in the blob store; the registry could not be reached/,
    );
  });
});
