import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/setup/global.ts'],
    pool: 'forks',
    // Two cores, but much of the suite waits rather than computes (leases expiring, daemons stopped for an
    // outage, Keystone tokens running out, clusters starting): a third worker overlaps those waits. The
    // tests assert no timings, so the extra contention only stretches them.
    maxWorkers: 3,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    teardownTimeout: 60_000,
  },
});
