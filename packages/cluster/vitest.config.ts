import { defineConfig } from "vitest/config";

// Unit tests: pure logic and in-process fakes, no QEMU, no root.
export default defineConfig({
  test: {
    include: ["src/**/*.test.ts"],
    exclude: ["src/**/*.int.test.ts", "node_modules", "dist"],
  },
});
