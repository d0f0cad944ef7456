import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts", "packages/*/test/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: "forks",
    globalSetup: ["test/helpers/global-setup.ts", "test/e2e/build-console.ts"],
    // Browser tests wait on a real UI: give polled assertions time to see it settle.
    expect: { poll: { timeout: 8_000 } },
  },
});
