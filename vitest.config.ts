import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['packages/*/test/**/*.test.ts', 'services/*/test/**/*.test.ts', 'test/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Two files at a time: most integration and e2e files wait on processes they started more than they
    // compute, so two overlap (measured 2026-12-03 on this 2-vCPU machine: 742 s one at a time, 605 s two).
    fileParallelism: true,
    maxWorkers: 2,
  },
});
