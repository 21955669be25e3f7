import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

// This module sits one level below the package root both as src/*.ts and bundled as dist/*.js.
const PACKAGE_ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");

/** Absolute path of the agent library to preload into QEMU (built by the package's `build`). */
export function agentLibraryPath(): string {
  return join(PACKAGE_ROOT, "dist", "native", "libvpc-dirty-log.so");
}

/** Absolute path of the QEMU stand-in used by this package's tests and benchmark. */
export function harnessPath(): string {
  return join(PACKAGE_ROOT, "dist", "native", "vpc-dl-harness");
}

export interface AgentEnvOptions {
  /** Activate in this executable instead of a `qemu-system-*` binary (tests). */
  exe?: string;
  /** Library to preload; default agentLibraryPath(). */
  library?: string;
  /** Watchdog: release the guest if the fault handler is stuck this long (agent default 5000). */
  watchdogMs?: number;
}

/** Environment variables that make a QEMU started with them load and activate the agent. */
export function agentEnv(socketPath: string, options: AgentEnvOptions = {}): Record<string, string> {
  const env: Record<string, string> = {
    LD_PRELOAD: options.library ?? agentLibraryPath(),
    VPC_DIRTY_LOG_SOCKET: socketPath,
  };
  if (options.exe !== undefined) env.VPC_DIRTY_LOG_EXE = options.exe;
  if (options.watchdogMs !== undefined) env.VPC_DIRTY_LOG_WATCHDOG_MS = String(options.watchdogMs);
  return env;
}

export interface AgentDir {
  /** Private (0700) directory holding the socket and the shared files. */
  dir: string;
  socketPath: string;
  /** Removes the directory and everything in it. */
  remove(): Promise<void>;
}

/**
 * Creates the private directory the agent requires (mode 0700), in /dev/shm when it exists so the
 * shared files live in memory.
 */
export async function createAgentDir(parent?: string): Promise<AgentDir> {
  const base = parent ?? (existsSync("/dev/shm") ? "/dev/shm" : tmpdir());
  const dir = await mkdtemp(join(base, "vpc-dl-"));
  return {
    dir,
    socketPath: join(dir, "agent.sock"),
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}
