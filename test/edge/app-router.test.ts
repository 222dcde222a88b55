import { describe, expect, it } from 'vitest';
import { createApp } from '../../src/edge/app.ts';
import { sqliteRegistry } from '../../registry/db/sqlite.ts';
import { FolderBlobStore } from '../../registry/blobs/folder.ts';

describe("the edge app's routes", () => {
  it("all fit hono's RegExpRouter (its fallback, TrieRouter, is slower on every request)", async () => {
    const app = createApp({ registry: sqliteRegistry(':memory:'), blobs: new FolderBlobStore('/nonexistent') });
    expect((await app.request('/healthz')).status).toBe(200); // the router is chosen at the first request
    expect(app.router.name).toBe('SmartRouter + RegExpRouter');
  });
});
