import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from "node:fs";
import { basename, join } from "node:path";
import { DirtyLogError } from "./errors.js";

/**
 * Returns `file` (one of native/Makefile's targets in `outDir`), building it from the C sources in
 * `nativeDir` first when it is missing. The package ships the sources rather than a binary built
 * against one glibc, so an install on any distribution builds its own on first use. The build goes
 * to a private directory and is renamed into place, so processes racing here never see half a
 * file. Synchronous: it runs once per install, and callers need the path before spawning QEMU.
 */
export function ensureNativeBuilt(
  nativeDir: string,
  outDir: string,
  file: string,
  compiler = process.env.CC ?? "cc",
): string {
  const target = join(outDir, file);
  if (existsSync(target)) return target;
  const probe = spawnSync(compiler, ["--version"], { stdio: "ignore" });
  if (probe.error !== undefined) {
    throw new DirtyLogError(
      "BUILD",
      `cannot build ${file}: no C compiler (\`${compiler}\` ${errorText(probe.error)}); install one ` +
        "(Debian/Ubuntu: apt-get install gcc make) or set CC",
      { op: "build", path: target, cause: probe.error },
    );
  }
  mkdirSync(outDir, { recursive: true });
  const scratch = mkdtempSync(join(outDir, ".build-"));
  try {
    const made = spawnSync(
      "make",
      ["-s", "-C", nativeDir, `CC=${compiler}`, `OUT=${scratch}`, join(scratch, file)],
      {
        encoding: "utf8",
      },
    );
    if (made.error !== undefined) {
      throw new DirtyLogError(
        "BUILD",
        `cannot build ${file}: \`make\` ${errorText(made.error)} (Debian/Ubuntu: apt-get install make)`,
        { op: "build", path: target, cause: made.error },
      );
    }
    if (made.status !== 0) {
      throw new DirtyLogError(
        "BUILD",
        `building ${file} from ${nativeDir} failed (make exit ${made.status}):\n${made.stderr.trim()}`,
        { op: "build", path: target },
      );
    }
    renameSync(join(scratch, basename(file)), target);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  return target;
}

function errorText(error: Error): string {
  return (error as NodeJS.ErrnoException).code === "ENOENT" ? "not found" : `failed: ${error.message}`;
}
