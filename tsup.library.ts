import type { Options } from "tsup";

/**
 * tsup options for a package's public entry points: ESM for `import` and CJS for `require()`
 * (package.json "exports" lists both), with .d.ts and .d.cts; shims gives the CJS build an
 * import.meta.url. `keep` names other outputs in dist/ that the clean must leave alone (built
 * by a second config at the same time).
 */
export function libraryBuild(entry: string[], keep: string[] = []): Options {
  return {
    entry,
    format: ["esm", "cjs"],
    shims: true,
    dts: true,
    sourcemap: true,
    clean: keep.map((glob) => `!${glob}`),
    target: "node20",
  };
}

/** tsup options for a command or bench entry: ESM only (it may await at top level), no types. */
export function scriptBuild(entry: string[]): Options {
  return { entry, format: ["esm"], sourcemap: true, target: "node20" };
}
