import { defineConfig } from "vitest/config";

// Integration tests: real QEMU, real sockets, real processes, one file at a time (two cores,
// CPU-bound TCG guests). A cluster needs hosts, and making hosts is @vpc/testbed's job, so the
// whole-cluster tests live there (demo, ssh-host, nested); none may be here yet.
export default defineConfig({
  test: {
    include: ["src/**/*.int.test.ts"],
    fileParallelism: false,
    passWithNoTests: true,
    testTimeout: 180_000,
    hookTimeout: 180_000,
  },
});
