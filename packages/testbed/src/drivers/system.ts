/**
 * This machine's side of every host kind: running `ip` and friends with errors that name the
 * step, and the checks `down`, `status` and leak checks share (links, processes, ports).
 */
import { execFile } from "node:child_process";
import { connect } from "node:net";
import { promisify } from "node:util";
import { HostSetupError } from "../errors.js";
import { processArgs } from "../lock.js";

const exec = promisify(execFile);

/** Runs `cmd`; a failure is a `HostSetupError` of `op` with the command and its stderr. */
export async function run(op: string, cmd: string, args: readonly string[]): Promise<string> {
  try {
    return (await exec(cmd, [...args], { maxBuffer: 1 << 20 })).stdout;
  } catch (cause) {
    const stderr = (cause as { stderr?: string }).stderr?.trim();
    throw new HostSetupError(op, `${cmd} ${args.join(" ")} failed${stderr ? `: ${stderr}` : ""}`, { cause });
  }
}

/** The command line of `pid` (arguments joined by spaces), undefined once it is gone. */
export function processCmdline(pid: number): string | undefined {
  // Synchronous (processArgs) keeps the check and the kill close together.
  return processArgs(pid)?.join(" ");
}

export async function linkExists(name: string): Promise<boolean> {
  try {
    await exec("ip", ["link", "show", name]);
    return true;
  } catch {
    return false;
  }
}

/** Waits up to ~1 s for a link its namespace or process took along to disappear; true if gone. */
export async function linkGone(name: string): Promise<boolean> {
  for (let i = 0; i < 40 && (await linkExists(name)); i++) await new Promise((r) => setTimeout(r, 25));
  return !(await linkExists(name));
}

export function portOpen(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolvePromise) => {
    const sock = connect({ host, port });
    const done = (ok: boolean): void => {
      sock.destroy();
      resolvePromise(ok);
    };
    sock.setTimeout(timeoutMs, () => done(false));
    sock.once("connect", () => done(true));
    sock.once("error", () => done(false));
  });
}
