import { defineConfig } from "tsup";

export default defineConfig({
  // bench.ts is the `npm run bench` entry; the native agent is built by `make -C native` after this
  // (tsup's clean would delete it otherwise).
  entry: ["src/index.ts", "src/bench.ts"],
  format: ["esm"],
  dts: { entry: "src/index.ts" },
  sourcemap: true,
  clean: true,
  target: "node20",
});
