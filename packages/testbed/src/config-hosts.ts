/**
 * The hosts of a named testbed: the long-lived one behind `vpc testbed up|status|down`, one per
 * cluster config name in its own fixed run directory (`namedTestbedDir`), so `up` twice finds the
 * first and `down` after a crash finds everything.
 *
 * Names say how these differ from their neighbours:
 * - `testbedUp` / `testbedDown` (hosts.ts) make and remove hosts from specs in whatever run
 *   directory they are given, for a caller that tears them down itself (`runClusterDemo`, tests).
 * - `ensureConfigHosts` / `configHostsStatus` / `removeConfigHosts` (here) work on one config's
 *   hosts in its named run directory: `ensure` does nothing when they are healthy, removes a
 *   broken earlier set and checks the machine before making them; `status` checks what is there
 *   against the config; `remove` also reports what is left and is a no-op when nothing is there.
 * - `namedTestbedUp` / `namedTestbedDown` (daemon-launcher.ts) start and stop the whole named
 *   testbed: its daemon, under the per-config lock.
 *
 * This module knows the hosts only. The VMs are booted and kept by the testbed daemon
 * (daemon.ts), which calls `ensureConfigHosts` itself: a host agent stops its VMs when its
 * SSH channel to the controller ends, and a qemu host lives as long as the process that made it,
 * so the long-lived process must be the one that makes the hosts. `testbedReport`
 * (daemon-launcher.ts) joins these host checks with the daemon's view of the VMs.
 */
import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import {
  type ClusterConfig,
  ClusterConfigError,
  ClusterError,
  clusterVms,
  formatIp,
  type HostKind,
  parsePrefix,
} from "@vpc/cluster";
import { linkExists } from "./drivers/system.js";
import { HostSetupError } from "./errors.js";
import { testbedDown, testbedHostProblems, testbedLeftovers, testbedUp } from "./hosts.js";
import { SshConnection } from "./ssh-host-remote.js";
import { readTestbedState, TESTBED_STATE_FILE, type TestbedHostSpec } from "./state.js";

const exec = promisify(execFile);

/** Root of the named testbeds' run directories and their lock files (override with $VPC_TESTBED_DIR). */
export function namedTestbedsRoot(env: NodeJS.ProcessEnv = process.env): string {
  return env.VPC_TESTBED_DIR ?? "/run/vpc-testbed";
}

/** The fixed run directory of the named testbed of config `configName`. */
export function namedTestbedDir(configName: string, root = namedTestbedsRoot()): string {
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
  return config.hosts.reduce((a, h) => a + hostMachineMiB(h), 0);
}

/** One host's share of `configGuestMiB`. */
function hostMachineMiB(h: ClusterConfig["hosts"][number]): number {
  // An ssh host's VMs use its own RAM (its probe checks its /dev/shm), not this machine's.
  if (h.kind === "ssh") return 0;
  return h.qemu === undefined ? h.vms.reduce((b, v) => b + v.memMiB, 0) : h.qemu.memMiB;
}

/** Whether the config has hosts on the fabric bridge (netns, qemu); ssh hosts need none. */
export function usesFabric(config: { readonly hosts: readonly { readonly kind: HostKind }[] }): boolean {
  return config.hosts.some((h) => h.kind !== "ssh");
}

/** Rejects a config whose guests need more RAM than `availableMiB` (MemAvailable), naming the hosts. */
export function checkGuestRam(config: ClusterConfig, availableMiB: number): void {
  const need = configGuestMiB(config);
  if (need <= availableMiB) return;
  const perHost = config.hosts
    .filter((h) => h.kind !== "ssh")
    .map((h) => `${h.name} ${hostMachineMiB(h)} MiB${h.qemu === undefined ? "" : " (its L1)"}`);
  throw new ClusterConfigError(
    "hosts",
    `the hosts need ${need} MiB of this machine's RAM (${perHost.join(", ")}) but it has ${availableMiB} MiB ` +
      "available (MemAvailable in /proc/meminfo); lower vm.memMiB or hosts[].vms[].memMiB (qemu hosts: " +
      "hosts[].memMiB), use fewer VMs, or stop what uses the memory",
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

/** Pure: the first 10.N.0.0/24 (N from 70) with no address of `ipAddrOutput` in it, for the advice. */
export function freeFabricPrefix(ipAddrOutput: string): string | undefined {
  for (let n = 70; n < 256; n++) {
    const p = `10.${n}.0.0/24`;
    if (fabricConflicts(p, ipAddrOutput).length === 0) return p;
  }
  return undefined;
}

/** The private key an ssh host logs in with must exist before anything is made. */
export function checkSshKeys(config: ClusterConfig, exists: (path: string) => boolean = existsSync): void {
  config.hosts.forEach((h, i) => {
    if (h.ssh === undefined || exists(h.ssh.key)) return;
    throw new ClusterConfigError(
      `hosts[${i}].key`,
      `${h.ssh.key} does not exist (ssh host ${h.name} logs in with it). Point key at an existing ` +
        `private key, or make one: ssh-keygen -t ed25519 -N '' -f ${h.ssh.key}, then add ${h.ssh.key}.pub ` +
        `to ~${h.ssh.user}/.ssh/authorized_keys on ${h.ssh.address}`,
    );
  });
}

/**
 * Logs in to every ssh host once (in parallel, `timeoutMs` each) and fails with the first one
 * that does not let us in, as a `ClusterConfigError` naming its field and the fix. The testbed's
 * own probe (prerequisites, agent copy) runs later in the daemon; this one only keeps `up` from
 * starting a daemon for a host that cannot work.
 */
async function checkSshLogins(config: ClusterConfig, timeoutMs = 10_000): Promise<void> {
  const hosts = config.hosts.map((h, i) => ({ h, i })).filter(({ h }) => h.ssh !== undefined);
  const results = await Promise.allSettled(
    hosts.map(async ({ h }) => {
      const ssh = h.ssh!;
      const conn = await SshConnection.open({
        hostId: h.name,
        address: ssh.address,
        port: ssh.port,
        user: ssh.user,
        keyPath: ssh.key,
        configuredKey: ssh.hostKey,
        pinnedKey: undefined,
        timeoutMs,
      });
      conn.end();
    }),
  );
  results.forEach((r, n) => {
    if (r.status === "fulfilled") return;
    const { h, i } = hosts[n]!;
    const ssh = h.ssh!;
    const e = r.reason as Error;
    const cause = (e.cause as Error | undefined)?.message ?? e.message;
    if (ClusterError.isInstance(e) && e.code === "HOST_KEY")
      throw new ClusterConfigError(`hosts[${i}].hostKey`, e.message);
    if (e instanceof HostSetupError && e.op === "ssh-key")
      throw new ClusterConfigError(
        `hosts[${i}].key`,
        `${ssh.key} cannot be used (${cause}); use a readable OpenSSH-format private key without a passphrase`,
      );
    // Address, port, user or the key's authorization: the whole host entry.
    throw new ClusterConfigError(
      `hosts[${i}]`,
      `cannot log in to ssh host ${h.name} as ${ssh.user}@${ssh.address}:${ssh.port} with ${ssh.key}: ${cause}. ` +
        `Check address and port, that sshd runs there and that ${ssh.key}.pub is in ~${ssh.user}/.ssh/authorized_keys ` +
        `(try: ssh -i ${ssh.key} -p ${ssh.port} ${ssh.user}@${ssh.address} true)`,
    );
  });
}

/**
 * Checks of the machine a config needs before anything is created: RAM, a fabric prefix that is
 * free here (only when a host is on the fabric), the ssh hosts' keys and logins.
 */
export async function checkConfigOnMachine(config: ClusterConfig): Promise<void> {
  checkGuestRam(config, parseMemAvailableMiB(readFileSync("/proc/meminfo", "utf8")));
  if (usesFabric(config)) {
    const addrs = (await exec("ip", ["-o", "-4", "addr", "show"])).stdout;
    const taken = fabricConflicts(config.fabric.prefix, addrs);
    if (taken.length > 0) {
      const free = freeFabricPrefix(addrs);
      throw new ClusterConfigError(
        "fabricPrefix",
        `${config.fabric.prefix} overlaps addresses already on this machine: ${taken.join(", ")} ` +
          "(another testbed's bridge or a real network); set fabricPrefix to a private prefix " +
          `that is free here${free === undefined ? "" : `, e.g. "${free}"`}`,
      );
    }
  }
  checkSshKeys(config);
  await checkSshLogins(config);
}

export interface ConfigHostStatus {
  readonly name: string;
  readonly kind: HostKind;
  /** The host's network namespace on this machine ("" for qemu and ssh hosts). */
  readonly netns: string;
  /** Fabric address (an ssh host's address). */
  readonly ip: string;
  /** How the controller logs in: `user@address:port`. */
  readonly ssh: string;
  /** The key it logs in with (an ssh host's own, else the testbed's). */
  readonly key: string;
  readonly problems: readonly string[];
}

export interface ConfigHostsStatus {
  readonly config: string;
  readonly runDir: string;
  /** `down`: no state; `up`: everything is there; `broken`: see `problems`. */
  readonly state: "down" | "up" | "broken";
  /** The fabric bridge; absent when every host is an ssh host (they need none). */
  readonly bridge?: string;
  readonly clientKey?: string;
  readonly hosts: readonly ConfigHostStatus[];
  readonly vms: readonly { name: string; host: string; dataIp: string; state: string }[];
  readonly problems: readonly string[];
}

/** What of the config's hosts in `runDir` is there and what is missing. */
export async function configHostsStatus(config: ClusterConfig, runDir: string): Promise<ConfigHostsStatus> {
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
  // ssh hosts are reached over this machine's own network: no bridge is made for them.
  const fabric = usesFabric({ hosts: st.hosts.map((h) => ({ kind: h.kind ?? "netns" })) });
  if (fabric && !(await linkExists(st.bridge))) problems.push(`bridge ${st.bridge} is missing`);
  const hosts: ConfigHostStatus[] = [];
  for (const h of st.hosts) {
    const p = await testbedHostProblems(st, h);
    hosts.push({
      name: h.name,
      kind: h.kind ?? "netns",
      netns: h.netns,
      ip: h.ip,
      ssh: `${h.user ?? "root"}@${h.ip}:${h.sshPort}`,
      key: h.keyPath ?? `${st.clientKey}.dropbear`,
      problems: p,
    });
    problems.push(...p.map((x) => `${h.name}: ${x}`));
  }
  for (const hc of config.hosts)
    if (!st.hosts.some((h) => h.name === hc.name))
      problems.push(`host ${hc.name} of the config was never created`);
  return {
    config: config.name,
    runDir,
    state: problems.length === 0 ? "up" : "broken",
    ...(fabric ? { bridge: st.bridge } : {}),
    clientKey: `${st.clientKey}.dropbear`,
    hosts,
    vms,
    problems,
  };
}

export interface EnsureConfigHostsResult {
  /** False when a healthy testbed was already up (nothing was done). */
  readonly created: boolean;
  /** What a broken earlier testbed left and `up` removed first. */
  readonly repaired: readonly string[];
  readonly status: ConfigHostsStatus;
}

/**
 * Brings up the config's hosts in `runDir` unless they are already up. A broken earlier
 * testbed there (crashed `up`, a host killed by hand) is removed first, then made anew.
 */
export async function ensureConfigHosts(
  config: ClusterConfig,
  runDir: string,
): Promise<EnsureConfigHostsResult> {
  const before = await configHostsStatus(config, runDir);
  if (before.state === "up") return { created: false, repaired: [], status: before };
  const repaired = before.state === "broken" ? await testbedDown(runDir) : [];
  await checkConfigOnMachine(config);
  await testbedUp({
    hosts: testbedHostSpecs(config),
    bridgeIp: config.fabric.bridgeIp,
    prefixLength: config.fabric.prefixLength,
    runDir,
  });
  return { created: true, repaired, status: await configHostsStatus(config, runDir) };
}

/** Removes the hosts recorded in `runDir` (none: nothing to do); returns what was removed and what is left. */
export async function removeConfigHosts(runDir: string): Promise<{ removed: string[]; left: string[] }> {
  if (!existsSync(join(runDir, TESTBED_STATE_FILE))) return { removed: [], left: [] };
  // Read first: down removes the run directory with the state file in it.
  const st = await readTestbedState(runDir);
  const removed = await testbedDown(runDir);
  return { removed, left: await testbedLeftovers(st) };
}
