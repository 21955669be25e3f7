import { defineConfig } from "tsup";

export default defineConfig({
  // "./testing" holds the fake QMP server and a QEMU launcher for other packages' tests.
  entry: ["src/index.ts", "src/testing/index.ts"],
  format: ["esm"],
  dts: true,
  sourcemap: true,
  clean: true,
  target: "node20",
});
