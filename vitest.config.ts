import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    globalSetup: ['test/support/global-build.ts'],
    pool: 'forks',
    // Each file opens its own database (PGlite runs initdb in 3-4 s), so allow for that.
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Two cores: more forks only fight over them.
    maxWorkers: 2,
  },
})
