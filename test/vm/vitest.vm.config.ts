import { defineConfig } from 'vitest/config';

/** The guest suite (run inside QEMU by test/vm/run.sh): one fork, files in sequence (they load/unload the module). */
export default defineConfig({
  test: {
    include: ['test/vm/guest/**/*.test.ts'],
    exclude: ['node_modules/**', 'dist/**'],
    pool: 'forks',
    maxWorkers: 1,
    fileParallelism: false,
    isolate: false,
    watch: false,
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
