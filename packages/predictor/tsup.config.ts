import { defineConfig } from "tsup";
import { libraryBuild, scriptBuild } from "../../tsup.library";

// The library, and the vpc-predictor command built beside it.
export default defineConfig([libraryBuild(["src/index.ts"], ["bin.*"]), scriptBuild(["src/bin.ts"])]);
