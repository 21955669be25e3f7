/**
 * `vpc testbed up|status|down` of a named testbed (one per config, in `namedTestbedDir`) with a
 * daemon: `up` (`namedTestbedUp`) starts one detached testbed daemon per config
 * (daemon.ts: it makes the hosts, boots the VMs and serves `<runDir>/control.sock`) and
 * waits until it is ready; `status` (`testbedReport`) joins the host checks (config-hosts.ts) with the daemon's
 * view of the VMs; `down` asks the daemon to stop, kills it by PID when it does not (only if its
 * command line names the run directory), then removes the hosts by the recorded state
 * (`namedTestbedDown`, `removeTestbed` without the lock).
 *
 * `up` and `down` of one config take a lock (lock.ts), so two of them never interleave.
 */
import { spawn } from "node:child_process";
import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from "node:fs";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { ClusterConfig } from "@vpc/cluster";
import {
  type ConfigHostsStatus,
  checkConfigOnMachine,
  configHostsStatus,
  removeConfigHosts,
} from "./config-hosts.js";
import {
  controlSocketPath,
  DAEMON_LOG_FILE,
  DAEMON_PID_FILE,
  type DaemonPhase,
  type DaemonStatus,
  TestbedControlClient,
} from "./control-socket.js";
import { TestbedError } from "./errors.js";
import { acquireTestbedLock, argsName, processArgs } from "./lock.js";

export interface TestbedReport extends Omit<ConfigHostsStatus, "vms" | "state"> {
  /**
   * `down`: nothing there; `starting`: the daemon makes the hosts and boots the VMs; `up`: hosts
   * healthy and the daemon ready; `broken`: see `problems`.
   */
  readonly state: "down" | "starting" | "up" | "broken";
  /** The daemon's view when it answers, else the config's VMs as `not booted`. */
  readonly vms: readonly (ConfigHostsStatus["vms"][number] & { readonly problem?: string })[];
  readonly daemon?: { readonly pid: number; readonly phase?: DaemonPhase; readonly log: string };
  readonly committedEpochs: readonly number[];
  readonly restoredFrom?: number;
  readonly run?: DaemonStatus["run"];
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The recorded PID of the daemon of `runDir`, if it is still that daemon. */
export function liveDaemonPid(runDir: string): number | undefined {
  let pid: number;
  try {
    pid = Number(readFileSync(join(runDir, DAEMON_PID_FILE), "utf8").trim());
  } catch {
    return undefined;
  }
  return Number.isInteger(pid) && pid > 0 && argsName(processArgs(pid), runDir) ? pid : undefined;
}

/** Pure: what is wrong, given the host checks and the daemon's answer (or why there was none). */
export function reportProblems(
  hosts: ConfigHostsStatus,
  daemon: DaemonStatus | { readonly error: string },
): { infrastructure: string[]; vms: string[] } {
  // While the daemon starts, missing hosts are not broken: they are being made.
  if (!("error" in daemon) && daemon.phase === "starting")
    return { infrastructure: ["the testbed daemon is starting (the hosts and VMs come up)"], vms: [] };
  const infrastructure = [...hosts.problems];
  const vms: string[] = [];
  if ("error" in daemon) infrastructure.push(daemon.error);
  else if (daemon.phase !== "ready") infrastructure.push(`the testbed daemon is ${daemon.phase}`);
  else
    for (const v of daemon.vms)
      if (v.state !== "running")
        vms.push(
          `${v.name}: ${v.state}${v.problem ? ` (${v.problem})` : ""}${v.state === "killed" ? " — vpc testbed restore brings it back" : ""}`,
        );
  return { infrastructure, vms };
}

/** Hosts, daemon and VMs of the testbed in `runDir`. */
export async function testbedReport(config: ClusterConfig, runDir: string): Promise<TestbedReport> {
  const hosts = await configHostsStatus(config, runDir);
  const pid = liveDaemonPid(runDir);
  const log = join(runDir, DAEMON_LOG_FILE);
  if (hosts.state === "down" && pid === undefined) {
    const leftover = existsSync(runDir)
      ? [`${runDir} is left from a failed start (vpc testbed down removes it)`]
      : [];
    return {
      ...hosts,
      state: leftover.length > 0 ? "broken" : "down",
      problems: leftover,
      committedEpochs: [],
    };
  }
  let daemon: DaemonStatus | { error: string };
  if (pid === undefined) daemon = { error: `the testbed daemon is not running (see ${log})` };
  else
    try {
      const client = await TestbedControlClient.connect(runDir);
      try {
        daemon = await client.call<DaemonStatus>({ method: "status" }, 60_000);
      } finally {
        client.close();
      }
    } catch (e) {
      daemon = { error: `the testbed daemon (pid ${pid}) does not answer: ${(e as Error).message}` };
    }
  const p = reportProblems(hosts, daemon);
  const ok = "error" in daemon ? undefined : daemon;
  return {
    ...hosts,
    state: ok?.phase === "starting" ? "starting" : p.infrastructure.length === 0 ? "up" : "broken",
    problems: [...p.infrastructure, ...p.vms],
    vms: ok?.vms ?? hosts.vms,
    ...(pid === undefined ? {} : { daemon: { pid, ...(ok ? { phase: ok.phase } : {}), log } }),
    committedEpochs: ok?.committedEpochs ?? [],
    ...(ok?.restoredFrom === undefined ? {} : { restoredFrom: ok.restoredFrom }),
    ...(ok?.run === undefined ? {} : { run: ok.run }),
  };
}

/** The last `n` lines of a file ("" when it cannot be read). */
export function tailLines(path: string, n: number): string {
  try {
    return readFileSync(path, "utf8").trimEnd().split("\n").slice(-n).join("\n");
  } catch {
    return "";
  }
}

/**
 * Stops the daemon of `runDir` (asks it, then SIGKILL by PID if it does not exit) and removes
 * everything of the testbed. Returns what was removed and what is still there.
 */
async function removeTestbed(runDir: string): Promise<{ removed: string[]; left: string[] }> {
  const removed: string[] = [];
  const pid = liveDaemonPid(runDir);
  if (pid !== undefined) {
    let asked = false;
    try {
      const client = await TestbedControlClient.connect(runDir, { timeoutMs: 3000 });
      try {
        await client.call({ method: "shutdown" }, 120_000);
        asked = true;
      } finally {
        client.close();
      }
    } catch {
      // Dead, hung or still booting: it is killed below.
    }
    for (let i = 0; i < 100 && liveDaemonPid(runDir) === pid; i++) await sleep(100);
    // Check right before the kill: the PID must still be this testbed's daemon.
    if (liveDaemonPid(runDir) === pid) {
      process.kill(pid, "SIGKILL");
      for (let i = 0; i < 50 && liveDaemonPid(runDir) === pid; i++) await sleep(100);
      removed.push(`pid ${pid} (testbed daemon, killed)`);
    } else removed.push(`pid ${pid} (testbed daemon${asked ? ", shut down" : ""})`);
  }
  const hosts = await removeConfigHosts(runDir);
  removed.push(...hosts.removed);
  // What a daemon that failed before making any host leaves: its log and PID file.
  if (existsSync(runDir)) {
    await rm(runDir, { recursive: true, force: true });
    removed.push(runDir);
  }
  const left = [...hosts.left];
  if (pid !== undefined && argsName(processArgs(pid), runDir)) left.push(`pid ${pid} (testbed daemon)`);
  if (existsSync(runDir)) left.push(runDir);
  return { removed, left };
}

export interface NamedTestbedUpOptions {
  readonly config: ClusterConfig;
  readonly runDir: string;
  /** Where the per-config lock files live (the parent of the run directories). */
  readonly root: string;
  /** argv of the daemon (program first); it must name `runDir` as an argument. */
  readonly daemonCommand: readonly string[];
  /** Each line the daemon logs while it starts. */
  readonly onLine?: (line: string) => void;
  /** Limit for the hosts and VMs to come up (default 900 000 ms). */
  readonly readyTimeoutMs?: number;
}

export interface NamedTestbedUpResult {
  /** False when a healthy testbed was already up (nothing was done). */
  readonly created: boolean;
  /** What a broken earlier testbed left and `up` removed first. */
  readonly repaired: readonly string[];
  /** A daemon still booting (its `up` was interrupted) was waited for. */
  readonly joined?: boolean;
  readonly status: TestbedReport;
}

/**
 * Brings the testbed of `config` up unless it is: a broken one is removed first; a daemon is
 * started detached (new session, stdio to `<runDir>/daemon.log`) and waited for. If it fails,
 * its error and log tail are in the thrown `TestbedError` and nothing of it is left.
 */
export async function namedTestbedUp(o: NamedTestbedUpOptions): Promise<NamedTestbedUpResult> {
  const { config, runDir } = o;
  if (!o.daemonCommand.includes(runDir))
    throw new TestbedError("TESTBED_STATE", "the daemon command must name the run directory");
  const release = await acquireTestbedLock(o.root, config.name, "up");
  try {
    const before = await testbedReport(config, runDir);
    if (before.state === "up") return { created: false, repaired: [], status: before };
    const starting = before.state === "starting" ? before.daemon?.pid : undefined;
    if (starting !== undefined) {
      // A daemon whose `up` was interrupted is still booting: wait for it instead of a new one.
      const logPath = join(runDir, DAEMON_LOG_FILE);
      const gone = (): string | undefined => (liveDaemonPid(runDir) === starting ? undefined : "it ended");
      try {
        await waitReady(runDir, logPath, gone, o.onLine, o.readyTimeoutMs ?? 900_000);
      } catch (e) {
        throw await failed(runDir, e);
      }
      return { created: false, repaired: [], joined: true, status: await testbedReport(config, runDir) };
    }
    const repaired = before.state === "broken" ? (await removeTestbed(runDir)).removed : [];
    await checkConfigOnMachine(config);
    await mkdir(runDir, { recursive: true, mode: 0o700 });
    const logPath = join(runDir, DAEMON_LOG_FILE);
    const fd = openSync(logPath, "a", 0o600);
    const [program, ...args] = o.daemonCommand;
    const child = spawn(program!, args, { detached: true, stdio: ["ignore", fd, fd] });
    closeSync(fd);
    let exited: string | undefined;
    child.once("exit", (code, signal) => {
      exited = signal ? `killed by ${signal}` : `exit status ${code}`;
    });
    child.once("error", (e) => {
      exited = e.message;
    });
    try {
      if (child.pid === undefined) await new Promise((r) => setImmediate(r));
      if (child.pid === undefined) throw new Error(`cannot start ${program}: ${exited ?? "no pid"}`);
      await writeFile(join(runDir, DAEMON_PID_FILE), `${child.pid}\n`, { mode: 0o600 });
      await waitReady(runDir, logPath, () => exited, o.onLine, o.readyTimeoutMs ?? 900_000);
    } catch (e) {
      throw await failed(runDir, e);
    }
    child.unref();
    return { created: true, repaired, status: await testbedReport(config, runDir) };
  } finally {
    release();
  }
}

/** After a failed start: the error with the log's tail, and nothing of the testbed left. */
async function failed(runDir: string, e: unknown): Promise<TestbedError> {
  const tail = tailLines(join(runDir, DAEMON_LOG_FILE), 15);
  await removeTestbed(runDir).catch(() => undefined);
  return new TestbedError(
    "TESTBED_STATE",
    `the testbed daemon did not come up: ${(e as Error).message}${tail ? `\nlast lines of its log:\n${tail}` : ""}`,
    { cause: e },
  );
}

/** Follows the log (each new line to `onLine`) until the daemon says it is ready. */
async function waitReady(
  runDir: string,
  logPath: string,
  exited: () => string | undefined,
  onLine: ((line: string) => void) | undefined,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let offset = 0;
  let partial = "";
  const follow = (): void => {
    const size = existsSync(logPath) ? statSync(logPath).size : 0;
    if (size <= offset) return;
    const buf = Buffer.alloc(size - offset);
    const fd = openSync(logPath, "r");
    try {
      readSync(fd, buf, 0, buf.length, offset);
    } finally {
      closeSync(fd);
    }
    offset = size;
    const lines = (partial + buf.toString("utf8")).split("\n");
    partial = lines.pop() ?? "";
    for (const l of lines) onLine?.(l);
  };
  for (;;) {
    follow();
    const gone = exited();
    if (gone !== undefined) throw new Error(`it ended (${gone})`);
    if (Date.now() > deadline) throw new Error(`not ready within ${(timeoutMs / 1000).toFixed(0)} s`);
    if (existsSync(controlSocketPath(runDir))) {
      try {
        const client = await TestbedControlClient.connect(runDir, { timeoutMs: 2000 });
        try {
          const s = await client.call<DaemonStatus>({ method: "status" }, 60_000);
          if (s.phase === "ready") {
            follow();
            return;
          }
        } finally {
          client.close();
        }
      } catch {
        // Between listen and the first answer, or it just failed: the next round tells.
      }
    }
    await sleep(500);
  }
}

/** Removes the testbed of `config` (under the lock of its `up`/`down`). */
export async function namedTestbedDown(
  config: ClusterConfig,
  runDir: string,
  root: string,
): Promise<{ removed: string[]; left: string[] }> {
  const release = await acquireTestbedLock(root, config.name, "down");
  try {
    return await removeTestbed(runDir);
  } finally {
    release();
  }
}

/**
 * A control connection to the testbed of `config`, or a `TestbedError` TESTBED_STATE that says
 * what to do (the testbed is down, its daemon died, it is still starting).
 */
export async function connectTestbed(
  config: ClusterConfig,
  runDir: string,
  onProgress?: (line: string) => void,
): Promise<TestbedControlClient> {
  const pid = liveDaemonPid(runDir);
  if (pid === undefined)
    throw new TestbedError(
      "TESTBED_STATE",
      existsSync(runDir)
        ? `testbed ${config.name} is broken: its daemon is not running (vpc testbed down, then vpc testbed up)`
        : `testbed ${config.name} is down (vpc testbed up brings it up)`,
    );
  try {
    return await TestbedControlClient.connect(runDir, onProgress ? { onProgress } : {});
  } catch (e) {
    throw new TestbedError(
      "TESTBED_STATE",
      `testbed ${config.name}: its daemon (pid ${pid}) does not answer: ${(e as Error).message}`,
      { cause: e },
    );
  }
}
