/**
 * Last-resort clean-up: if this Node process exits while VMs are still alive (a test runner
 * tearing down, an uncaught error), SIGKILL their QEMU processes and remove their directories
 * synchronously. Normal paths clean up themselves and unregister.
 */
import { rmSync } from "node:fs";

const pids = new Set<number>();
const dirs = new Set<string>();
let installed = false;

function reapAll(): void {
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  pids.clear();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  dirs.clear();
}

function install(): void {
  if (installed) return;
  installed = true;
  process.once("exit", reapAll);
}

export function trackPid(pid: number): void {
  install();
  pids.add(pid);
}

export function untrackPid(pid: number): void {
  pids.delete(pid);
}

export function trackDir(dir: string): void {
  install();
  dirs.add(dir);
}

export function untrackDir(dir: string): void {
  dirs.delete(dir);
}

/** Kills and removes everything still tracked; for signal handlers of CLIs. */
export function reapNow(): void {
  reapAll();
}
