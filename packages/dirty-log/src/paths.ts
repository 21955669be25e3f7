import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { ensureNativeBuilt } from "./native-build.js";

// This module sits one level below the package root both as src/*.ts and bundled as dist/*.js.
const PACKAGE_ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");

const NATIVE_SOURCES = join(PACKAGE_ROOT, "native");
const NATIVE_OUT = join(PACKAGE_ROOT, "dist", "native");

/**
 * Absolute path of the agent library to preload into QEMU. Built by the package's `build`; in an
 * installed package it is compiled from native/ on the first call (needs `cc` and `make`; throws
 * a DirtyLogError with code "BUILD" naming what is missing).
 */
export function agentLibraryPath(): string {
  return ensureNativeBuilt(NATIVE_SOURCES, NATIVE_OUT, "libvpc-dirty-log.so");
}

/** Absolute path of the QEMU stand-in used by tests and benchmarks; built like agentLibraryPath(). */
export function harnessPath(): string {
  return ensureNativeBuilt(NATIVE_SOURCES, NATIVE_OUT, "vpc-dl-harness");
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
