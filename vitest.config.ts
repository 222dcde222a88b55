import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Suites start model workers, servers and wrangler: run files one at a time on 2-core CI.
    fileParallelism: false,
  },
});
