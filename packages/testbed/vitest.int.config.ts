import { defineConfig } from "vitest/config";

// Integration tests: real QEMU, real netns, real SSH, real processes (root). Run one file at a time
// because the machine has two cores and TCG guests are CPU-bound.
export default defineConfig({
  test: {
    include: ["src/**/*.int.test.ts"],
    fileParallelism: false,
    testTimeout: 180_000,
    hookTimeout: 180_000,
  },
});
