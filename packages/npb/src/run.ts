import { type ChildProcess, spawn } from "node:child_process";
import { access, constants } from "node:fs/promises";

import { npbBinaryPath, npbBinDir } from "./bin-dir.js";
import { NpbError } from "./errors.js";
import {
  isNpbClass,
  isNpbKernel,
  NPB_CLASSES,
  NPB_KERNELS,
  type NpbClass,
  type NpbKernel,
  type NpbResult,
  parseNpbResult,
} from "./result.js";

export interface RunNpbOptions {
  kernel: NpbKernel;
  cls: NpbClass;
  /** Number of MPI processes (`mpiexec -n`). */
  np: number;
  /** Extra environment for mpiexec and the ranks, on top of process.env. */
  env?: NodeJS.ProcessEnv;
  /** Kill the run after this long (default 600 000 ms). */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Where the binaries are (default npbBinDir()). */
  binDir?: string;
  /** The launcher (default "mpiexec" from PATH). */
  mpiexec?: string;
}

export interface NpbRun extends NpbResult {
  /** Wall-clock time of the whole mpiexec run, start-up included. */
  wallSeconds: number;
  stdout: string;
  stderr: string;
}

const DEFAULT_TIMEOUT_MS = 600_000;
// After SIGTERM to the launcher's process group, how long before SIGKILL.
const KILL_GRACE_MS = 2_000;

/**
 * Runs `mpiexec -n NP <binDir>/<kernel> CLASS` on this host and parses its result block.
 * A run that fails verification still resolves (with `verified: false`); it rejects with an
 * NpbError on a missing binary, a non-zero exit, a timeout/abort (the whole launcher process
 * group — mpiexec, its proxy and the ranks — is killed first) or a missing/malformed block.
 */
export async function runNpb(options: RunNpbOptions): Promise<NpbRun> {
  const { kernel, cls, np } = options;
  if (!isNpbKernel(kernel)) {
    throw new NpbError("INVALID_ARGUMENT", `kernel must be one of ${NPB_KERNELS.join(", ")}`);
  }
  if (!isNpbClass(cls))
    throw new NpbError("INVALID_ARGUMENT", `class must be one of ${NPB_CLASSES.join(", ")}`);
  if (!Number.isInteger(np) || np < 1) throw new NpbError("INVALID_ARGUMENT", "np must be an integer >= 1");
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const bin = npbBinaryPath(kernel, options.binDir ?? npbBinDir());
  try {
    await access(bin, constants.X_OK);
  } catch (cause) {
    throw new NpbError("BINARY_MISSING", `${bin} is missing or not executable; run \`make npb\` first`, {
      path: bin,
      cause,
    });
  }

  const started = performance.now();
  const child = spawn(options.mpiexec ?? "mpiexec", ["-n", String(np), bin, cls], {
    env: { ...process.env, ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
    // own process group, so a timeout can kill mpiexec together with its proxy and ranks
    detached: true,
  });
  const out = collect(child);
  let stopReason: "TIMEOUT" | "ABORTED" | undefined;
  const stop = (reason: "TIMEOUT" | "ABORTED") => {
    if (stopReason !== undefined) return;
    stopReason = reason;
    killGroup(child, "SIGTERM");
    setTimeout(() => killGroup(child, "SIGKILL"), KILL_GRACE_MS).unref();
  };
  const timer = setTimeout(() => stop("TIMEOUT"), timeoutMs);
  const onAbort = () => stop("ABORTED");
  if (options.signal?.aborted) onAbort();
  options.signal?.addEventListener("abort", onAbort, { once: true });

  let exit: { code: number | null; signal: NodeJS.Signals | null };
  try {
    exit = await new Promise((resolve, reject) => {
      child.once("error", reject);
      child.once("close", (code, signal) => resolve({ code, signal }));
    });
  } catch (cause) {
    throw new NpbError("SPAWN_FAILED", `cannot start ${options.mpiexec ?? "mpiexec"}`, { cause });
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener("abort", onAbort);
  }
  const wallSeconds = (performance.now() - started) / 1000;
  const { stdout, stderr } = out();
  const what = `mpiexec -n ${np} ${kernel} ${cls}`;
  if (stopReason !== undefined) {
    const why = stopReason === "TIMEOUT" ? `timed out after ${timeoutMs} ms` : "was aborted";
    throw new NpbError(stopReason, `${what} ${why}`, {
      exitCode: exit.code,
      signal: exit.signal,
      stdout,
      stderr,
      cause: stopReason === "ABORTED" ? options.signal?.reason : undefined,
    });
  }
  if (exit.code !== 0) {
    const tail = stderr.trim().split("\n").slice(-5).join("\n");
    throw new NpbError(
      "EXIT_FAILURE",
      `${what} exited with ${exit.signal ?? `code ${exit.code}`}${tail ? `: ${tail}` : ""}`,
      { exitCode: exit.code, signal: exit.signal, stdout, stderr },
    );
  }
  return { ...parseNpbResult(stdout), wallSeconds, stdout, stderr };
}

function collect(child: ChildProcess): () => { stdout: string; stderr: string } {
  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  child.stdout?.on("data", (b: Buffer) => stdout.push(b));
  child.stderr?.on("data", (b: Buffer) => stderr.push(b));
  return () => ({
    stdout: Buffer.concat(stdout).toString("utf8"),
    stderr: Buffer.concat(stderr).toString("utf8"),
  });
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  // Only while our launcher is alive: then the group id is its pid and cannot have been reused.
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // the group has just exited on its own
  }
}
