import { defineConfig } from "tsup";
import { libraryBuild, scriptBuild } from "../../tsup.library";

// The library, and the `npm run bench` entry built beside it. The native agent is built by
// `make -C native` after this (the clean would delete it otherwise).
export default defineConfig([libraryBuild(["src/index.ts"], ["bench.*"]), scriptBuild(["src/bench.ts"])]);
