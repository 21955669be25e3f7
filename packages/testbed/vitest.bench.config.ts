import { defineConfig } from "vitest/config";

// Benchmarks against real QEMU; they print their figures as JSON.
export default defineConfig({
  test: {
    include: ["bench/**/*.bench.ts"],
    fileParallelism: false,
    testTimeout: 600_000,
    hookTimeout: 600_000,
  },
});
