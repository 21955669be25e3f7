import { defineConfig } from "tsup";

export default defineConfig({
  entry: ["src/index.ts", "src/testing/index.ts"],
  // ESM for `import`, CJS for `require()` (both listed in package.json "exports"); shims gives the CJS
  // build an import.meta.url.
  format: ["esm", "cjs"],
  shims: true,
  dts: true,
  sourcemap: true,
  clean: true,
  target: "node20",
});
