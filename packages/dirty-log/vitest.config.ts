import { defineConfig } from "vitest/config";

// Unit tests: pure logic and in-process fakes, no QEMU, no root.
export default defineConfig({
  test: {
    // Bounded work, not speed: on a loaded 2-core machine a 1 s test can take 5+ s (vitest's default).
    testTimeout: 60_000,
    hookTimeout: 60_000,
    include: ["src/**/*.test.ts"],
    exclude: ["src/**/*.int.test.ts", "node_modules", "dist"],
  },
});
