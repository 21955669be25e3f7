import { join } from "node:path";
import { fileURLToPath } from "node:url";

import type { NpbKernel } from "./result.js";

/**
 * Directory holding the kernel binaries: $NPB_BIN_DIR when set, else <repo>/build/npb/bin
 * (what the root `make npb` builds). Both src/ and dist/ sit one level under packages/npb, so
 * the repo root is three levels above this module either way.
 */
export function npbBinDir(env: NodeJS.ProcessEnv = process.env): string {
  const override = env.NPB_BIN_DIR;
  if (override !== undefined && override !== "") return override;
  return fileURLToPath(new URL("../../../build/npb/bin", import.meta.url));
}

/** Path of one kernel's binary in `binDir` (default: npbBinDir()). */
export function npbBinaryPath(kernel: NpbKernel, binDir: string = npbBinDir()): string {
  return join(binDir, kernel);
}
