import { defineConfig } from "vitest/config";

/**
 * Every package's unit-test config (each vitest.config.ts under packages): pure logic and in-process
 * fakes, no QEMU, no root. `exclude` adds to the integration tests left out.
 */
export function unitTestConfig(exclude: readonly string[] = []) {
  return defineConfig({
    test: {
      // Bounded work, not speed: on a loaded 2-core machine a 1 s test can take 5+ s (vitest's default).
      testTimeout: 60_000,
      hookTimeout: 60_000,
      include: ["src/**/*.test.ts"],
      exclude: ["src/**/*.int.test.ts", ...exclude, "node_modules", "dist"],
    },
  });
}
