/**
 * The hosts of the long-lived testbed behind `vpc testbed up|status|down`: one fixed run
 * directory per cluster config name, so `up` twice finds the first and `down` after a crash finds
 * everything.
 *
 * This module knows the hosts only. The VMs are booted and kept by the testbed daemon
 * (testbed-daemon.ts), which calls `testbedSessionUp` itself: a host agent stops its VMs when its
 * SSH channel to the controller ends, and a qemu host lives as long as the process that made it,
 * so the long-lived process must be the one that makes the hosts. `testbedReport`
 * (testbed-service.ts) joins these host checks with the daemon's view of the VMs.
 */
import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { type ClusterConfig, clusterVms, formatIp, parsePrefix } from "./config.js";
import { ClusterConfigError } from "./errors.js";
import {
  readTestbedState,
  TESTBED_STATE_FILE,
  type TestbedHostSpec,
  testbedDown,
  testbedHostProblems,
  testbedLeftovers,
  testbedUp,
} from "./testbed.js";

const exec = promisify(execFile);

/** Root of the per-config run directories (override with $VPC_TESTBED_DIR). */
export function testbedSessionRoot(env: NodeJS.ProcessEnv = process.env): string {
  return env.VPC_TESTBED_DIR ?? "/run/vpc-testbed";
}

export function testbedSessionDir(configName: string, root = testbedSessionRoot()): string {
  return join(root, configName);
}

/** What `testbedUp` makes for the hosts of a cluster config. */
export function testbedHostSpecs(config: ClusterConfig): TestbedHostSpec[] {
  return config.hosts.map((h) => ({
    name: h.name,
    ip: h.fabricIp,
    kind: h.kind,
    ...(h.qemu === undefined ? {} : { qemu: h.qemu }),
    ...(h.ssh === undefined ? {} : { ssh: h.ssh, guestMiB: h.vms.reduce((a, v) => a + v.memMiB, 0) }),
  }));
}

/**
 * RAM the config asks of this machine, in MiB: its VMs' RAM, except that a qemu host counts
 * its L1's `memMiB` (its VMs live inside that RAM, in the L1's /dev/shm).
 */
export function configGuestMiB(config: ClusterConfig): number {
  // An ssh host's VMs use its own RAM (its probe checks its /dev/shm), not this machine's.
  return config.hosts.reduce(
    (a, h) =>
      a +
      (h.kind === "ssh" ? 0 : h.qemu === undefined ? h.vms.reduce((b, v) => b + v.memMiB, 0) : h.qemu.memMiB),
    0,
  );
}

/** Rejects a config whose guests need more RAM than `availableMiB` (MemAvailable). */
export function checkGuestRam(config: ClusterConfig, availableMiB: number): void {
  const need = configGuestMiB(config);
  if (need > availableMiB)
    throw new ClusterConfigError(
      "hosts",
      `the VMs (and qemu hosts) need ${need} MiB of RAM but this machine has ${availableMiB} MiB available`,
    );
}

/** MemAvailable of /proc/meminfo in MiB. */
export function parseMemAvailableMiB(meminfo: string): number {
  const m = /^MemAvailable:\s+(\d+) kB$/m.exec(meminfo);
  if (!m) throw new Error("no MemAvailable line in /proc/meminfo");
  return Math.floor(Number(m[1]) / 1024);
}

/**
 * Addresses from `ip -o -4 addr show` output that fall inside `prefix` (a bridge of another
 * testbed or a real network there would make the fabric unroutable).
 */
export function fabricConflicts(prefix: string, ipAddrOutput: string): string[] {
  const { base, length } = parsePrefix("fabricPrefix", prefix);
  const size = 2 ** (32 - length);
  const out: string[] = [];
  for (const line of ipAddrOutput.split("\n")) {
    const m = /^\d+:\s+(\S+)\s+inet\s+(\d+)\.(\d+)\.(\d+)\.(\d+)\/\d+/.exec(line);
    if (!m) continue;
    const addr = [m[2], m[3], m[4], m[5]].reduce((a, o) => a * 256 + Number(o), 0);
    if (addr >= base && addr < base + size) out.push(`${formatIp(addr)} on ${m[1]}`);
  }
  return out;
}

/** Checks of the machine a config needs before anything is created. */
export async function checkConfigOnMachine(config: ClusterConfig): Promise<void> {
  checkGuestRam(config, parseMemAvailableMiB(readFileSync("/proc/meminfo", "utf8")));
  const addrs = (await exec("ip", ["-o", "-4", "addr", "show"])).stdout;
  const taken = fabricConflicts(config.fabric.prefix, addrs);
  if (taken.length > 0)
    throw new ClusterConfigError(
      "fabricPrefix",
      `${config.fabric.prefix} overlaps addresses already on this machine: ${taken.join(", ")}`,
    );
}

export interface TestbedSessionHostStatus {
  readonly name: string;
  readonly netns: string;
  readonly ip: string;
  readonly ssh: string;
  readonly problems: readonly string[];
}

export interface TestbedSessionStatus {
  readonly config: string;
  readonly runDir: string;
  /** `down`: no state; `up`: everything is there; `broken`: see `problems`. */
  readonly state: "down" | "up" | "broken";
  readonly bridge?: string;
  readonly clientKey?: string;
  readonly hosts: readonly TestbedSessionHostStatus[];
  readonly vms: readonly { name: string; host: string; dataIp: string; state: string }[];
  readonly problems: readonly string[];
}

async function linkExists(name: string): Promise<boolean> {
  return exec("ip", ["link", "show", name]).then(
    () => true,
    () => false,
  );
}

/** What of the testbed in `runDir` is there and what is missing. */
export async function testbedSessionStatus(
  config: ClusterConfig,
  runDir: string,
): Promise<TestbedSessionStatus> {
  const vms = clusterVms(config).map((v) => ({
    name: v.name,
    host: v.hostId,
    dataIp: v.dataIp,
    state: "not booted",
  }));
  if (!existsSync(join(runDir, TESTBED_STATE_FILE)))
    return { config: config.name, runDir, state: "down", hosts: [], vms, problems: [] };
  const st = await readTestbedState(runDir);
  const problems: string[] = [];
  if (!st.ready) problems.push("up did not finish (crashed or still running)");
  if (!(await linkExists(st.bridge))) problems.push(`bridge ${st.bridge} is missing`);
  const hosts: TestbedSessionHostStatus[] = [];
  for (const h of st.hosts) {
    const p = await testbedHostProblems(st, h);
    hosts.push({ name: h.name, netns: h.netns, ip: h.ip, ssh: `root@${h.ip}:${h.sshPort}`, problems: p });
    problems.push(...p.map((x) => `${h.name}: ${x}`));
  }
  for (const hc of config.hosts)
    if (!st.hosts.some((h) => h.name === hc.name))
      problems.push(`host ${hc.name} of the config was never created`);
  return {
    config: config.name,
    runDir,
    state: problems.length === 0 ? "up" : "broken",
    bridge: st.bridge,
    clientKey: `${st.clientKey}.dropbear`,
    hosts,
    vms,
    problems,
  };
}

export interface TestbedSessionUpResult {
  /** False when a healthy testbed was already up (nothing was done). */
  readonly created: boolean;
  /** What a broken earlier testbed left and `up` removed first. */
  readonly repaired: readonly string[];
  readonly status: TestbedSessionStatus;
}

/**
 * Brings up the config's netns hosts in `runDir` unless they are already up. A broken earlier
 * testbed there (crashed `up`, a host killed by hand) is removed first, then made anew.
 */
export async function testbedSessionUp(
  config: ClusterConfig,
  runDir: string,
): Promise<TestbedSessionUpResult> {
  const before = await testbedSessionStatus(config, runDir);
  if (before.state === "up") return { created: false, repaired: [], status: before };
  const repaired = before.state === "broken" ? await testbedDown(runDir) : [];
  await checkConfigOnMachine(config);
  await testbedUp({
    hosts: testbedHostSpecs(config),
    bridgeIp: config.fabric.bridgeIp,
    prefixLength: config.fabric.prefixLength,
    runDir,
  });
  return { created: true, repaired, status: await testbedSessionStatus(config, runDir) };
}

/** Removes everything of the testbed in `runDir`; returns what was removed and what is left. */
export async function testbedSessionDown(runDir: string): Promise<{ removed: string[]; left: string[] }> {
  if (!existsSync(join(runDir, TESTBED_STATE_FILE))) return { removed: [], left: [] };
  // Read first: down removes the run directory with the state file in it.
  const st = await readTestbedState(runDir);
  const removed = await testbedDown(runDir);
  return { removed, left: await testbedLeftovers(st) };
}
