import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The dashboard's bundle, which the edge serves (scripts/build.mjs --ui).
    globalSetup: ['test/setup/build.ts'],
    // Before any test file: a workaround for miniflare's synchronous proxy (see the file).
    setupFiles: ['test/setup/miniflare-sync-fetch.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Suites start model workers, servers and wrangler: run files one at a time on 2-core CI.
    fileParallelism: false,
    // Commands the tests start keep their weights and digest caches in this run's own folder, never
    // in the user's ~/.cache.
    env: { XDG_CACHE_HOME: mkdtempSync(join(tmpdir(), 'versa-test-cache-')) },
  },
});
