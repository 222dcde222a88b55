import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FolderBlobStore } from '../../registry/blobs/folder.ts';
import { firstOf, registrySource, storeSource } from '../../src/compute/blob-source.ts';
import { freePort } from '../helpers/compute.ts';

/** A registry stand-in on 127.0.0.1 answering with `handle`, recording the paths it is asked for. */
async function standIn(handle: (req: IncomingMessage, res: ServerResponse) => void) {
  const paths: string[] = [];
  const server = createServer((req, res) => {
    paths.push(req.url ?? '');
    handle(req, res);
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}`, paths, close: () => server.closeAllConnections() ?? server.close() };
}

const file = { name: 'adapter_model.safetensors', sha256: 'a'.repeat(64), bytes: 10 };
const ref = { id: 'writer@1', sha256: 'b'.repeat(64), files: [file] };

describe('adapter file sources', () => {
  it('when every source fails, the error says why each did (the local folder first)', async () => {
    const folder = new FolderBlobStore(mkdtempSync(join(tmpdir(), 'versa-blobs-')));
    const closed = `http://127.0.0.1:${await freePort()}`; // nothing listens there
    const source = firstOf(storeSource(folder), registrySource(closed, 'vsk_node-read-key'));
    const read = source.read(ref, file);
    await expect(read).rejects.toThrow(
      /blob a{64} \(adapter_model\.safetensors\) is not in the blob store; the registry could not be reached/,
    );
  });

  it('a redirect from the registry is not followed: the key never reaches another origin', async () => {
    const bait = await standIn((_, res) => res.writeHead(200).end('0123456789'));
    const registry = await standIn((_, res) => res.writeHead(302, { location: `${bait.url}/steal` }).end());
    try {
      await expect(registrySource(registry.url, 'vsk_node-read-key').read(ref, file)).rejects.toThrow(
        /the registry answered a redirect \(HTTP 302\) for writer@1 adapter_model\.safetensors: not followed/,
      );
      expect(registry.paths).toEqual(['/v1/adapters/writer/versions/1/files/adapter_model.safetensors']);
      expect(bait.paths).toEqual([]);
    } finally {
      bait.close();
      registry.close();
    }
  });

  it("reads no more than the manifest's size: an endless answer is cut, not buffered", async () => {
    let sent = 0;
    const registry = await standIn((_, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      const chunk = Buffer.alloc(64 * 1024, 1);
      const more = () => {
        while (!res.destroyed && res.write(chunk)) sent += chunk.length;
        if (!res.destroyed) res.once('drain', more);
      };
      more();
    });
    try {
      await expect(registrySource(registry.url, 'vsk_node-read-key').read(ref, file)).rejects.toThrow(
        /the registry's answer for writer@1 adapter_model\.safetensors is larger than the 10 bytes its manifest says/,
      );
      expect(sent).toBeLessThan(64 << 20); // stopped: far from the whole stream
      // An answer of exactly the manifest's size is read whole (its sha256 is checked by the cache).
      const exact = await standIn((_, res) => res.writeHead(200).end('0123456789'));
      try {
        expect(Buffer.from(await registrySource(exact.url).read(ref, file)).toString()).toBe('0123456789');
      } finally {
        exact.close();
      }
    } finally {
      registry.close();
    }
  });

  it('a GET the registry does not answer, or stops answering, is made once more, then given up', async () => {
    const fast = { headersMs: 200, stallMs: 200 };
    // The first request is never answered (lost on the way), the second is.
    let calls = 0;
    const lossy = await standIn((_, res) => void (++calls === 2 && res.writeHead(200).end('0123456789')));
    const stalling = await standIn((_, res) => res.writeHead(200).write('01234')); // half, then nothing
    const silent = await standIn(() => {});
    try {
      expect(Buffer.from(await registrySource(lossy.url, 'vsk_node-read-key', fast).read(ref, file)).toString()).toBe(
        '0123456789',
      );
      expect(lossy.paths).toHaveLength(2);
      await expect(registrySource(stalling.url, 'vsk_node-read-key', fast).read(ref, file)).rejects.toThrow(
        /^the registry stopped sending for writer@1 adapter_model\.safetensors in 0\.2 s$/,
      );
      expect(stalling.paths).toHaveLength(2);
      await expect(registrySource(silent.url, 'vsk_node-read-key', fast).read(ref, file)).rejects.toThrow(
        /^the registry did not answer for writer@1 adapter_model\.safetensors in 0\.2 s$/,
      );
      expect(silent.paths).toHaveLength(2);
    } finally {
      for (const s of [lossy, stalling, silent]) s.close();
    }
  });

  it("a blob folder's file is read no further than the manifest's size either", async () => {
    const folder = new FolderBlobStore(mkdtempSync(join(tmpdir(), 'versa-blobs-')));
    const put = await folder.put(new Uint8Array(100));
    await expect(storeSource(folder).read(ref, { ...file, sha256: put.sha256 })).rejects.toThrow(
      /blob [0-9a-f]{64} \(adapter_model\.safetensors\) is larger than the 10 bytes its manifest says/,
    );
  });
});
