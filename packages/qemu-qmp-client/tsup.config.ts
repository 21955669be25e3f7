import { defineConfig } from "tsup";
import { libraryBuild } from "../../tsup.library";

// "./testing" holds the fake QMP server and a QEMU launcher for other packages' tests.
export default defineConfig(libraryBuild(["src/index.ts", "src/testing/index.ts"]));
