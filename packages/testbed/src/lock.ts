/**
 * Guards of the long-lived testbed: one `up` or `down` at a time per config (a lock file holding
 * the PID and command of its holder, taken over when that process is gone), and process checks
 * that never trust a bare PID: a process is the testbed's only when its command line names the
 * testbed's run directory as a whole argument (PIDs are reused; never kill by name).
 */
import { linkSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { TestbedError } from "./errors.js";

/** The arguments of a process (`/proc/PID/cmdline`), or undefined when it is gone. */
export function processArgs(pid: number): string[] | undefined {
  try {
    const raw = readFileSync(`/proc/${pid}/cmdline`, "utf8");
    // A zombie has an empty command line: it is gone for our purposes.
    return raw === "" ? undefined : raw.replace(/\0$/, "").split("\0");
  } catch {
    return undefined;
  }
}

/** Pure: the process with these arguments is a testbed process of `runDir` (an exact argument). */
export function argsName(args: readonly string[] | undefined, runDir: string): boolean {
  return args?.includes(runDir) === true;
}

export interface LockHolder {
  readonly pid: number;
  /** What the holder does, e.g. "up". */
  readonly command: string;
  readonly since: string;
}

/** Pure: the lock file's content, or undefined when it is not one (torn, foreign). */
export function parseLockHolder(text: string): LockHolder | undefined {
  try {
    const v = JSON.parse(text) as Partial<LockHolder>;
    if (typeof v.pid !== "number" || !Number.isInteger(v.pid) || v.pid <= 0) return undefined;
    if (typeof v.command !== "string" || typeof v.since !== "string") return undefined;
    return { pid: v.pid, command: v.command, since: v.since };
  } catch {
    return undefined;
  }
}

/**
 * Pure: a lock is stale when its content is unreadable, its holder is gone, or the PID now
 * belongs to a process that is not a `vpc testbed` command (the PID was reused).
 */
export function lockIsStale(
  holder: LockHolder | undefined,
  holderArgs: readonly string[] | undefined,
): boolean {
  if (holder === undefined || holderArgs === undefined) return true;
  return !holderArgs.includes("testbed");
}

export const lockPath = (root: string, configName: string): string => join(root, `${configName}.lock`);

/**
 * Takes the lock of `configName` for `command`; returns its release. Fails with `TestbedError`
 * TESTBED_STATE naming the holder when a live `vpc testbed` process holds it. The lock file is
 * complete when it appears (written aside, then hard-linked into place, which fails if it exists).
 */
export async function acquireTestbedLock(
  root: string,
  configName: string,
  command: string,
): Promise<() => void> {
  await mkdir(root, { recursive: true, mode: 0o700 });
  const path = lockPath(root, configName);
  const mine: LockHolder = { pid: process.pid, command, since: new Date().toISOString() };
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(mine)}\n`, { mode: 0o600 });
  try {
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        linkSync(tmp, path);
        return () => {
          // Only our own lock: a stale-lock takeover by someone else must not be undone.
          if (parseLockHolder(readFileOr(path))?.pid === process.pid) rmSync(path, { force: true });
        };
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      }
      const holder = parseLockHolder(readFileOr(path));
      if (!lockIsStale(holder, holder && processArgs(holder.pid)))
        throw new TestbedError(
          "TESTBED_STATE",
          `another "vpc testbed ${holder!.command}" (pid ${holder!.pid}, since ${holder!.since}) is working on testbed ${configName}; wait for it to finish (lock ${path})`,
        );
      // Stale: move it aside atomically (of two racing takers, one rename wins), then retry.
      try {
        renameSync(path, `${path}.stale.${process.pid}`);
        rmSync(`${path}.stale.${process.pid}`, { force: true });
      } catch {
        // The other taker moved it first.
      }
    }
    throw new TestbedError("TESTBED_STATE", `could not take the lock ${path} (another command took it)`);
  } finally {
    unlinkSync(tmp);
  }
}

function readFileOr(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}
