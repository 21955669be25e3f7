import { defineConfig } from "vitest/config";

// Slow tier (class W of every kernel), run on demand: `npm run test:w -w @vpc/npb`.
export default defineConfig({
  test: {
    include: ["src/**/*.w.test.ts"],
    fileParallelism: false,
    testTimeout: 900_000,
    hookTimeout: 60_000,
  },
});
