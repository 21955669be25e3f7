/**
 * Emulated *netns hosts* (ARCHITECTURE.md §5): each host is a network namespace with its own
 * loopback, a veth into a fabric bridge in the root namespace, and a dropbear SSH server for the
 * controller. Everything created is first recorded in `<runDir>/testbed.json`, so `testbedDown`
 * removes exactly what `testbedUp` made, also after a crash half-way.
 *
 * dropbear 2022.83 has no option for an authorized_keys path, so each host's dropbear runs in a
 * private mount namespace (`ip netns exec` + `unshare -m`) with the host's own directory bound
 * over /root (its authorized_keys) and another over /dev/shm (the host's own shm: QEMU RAM files
 * and dirty-log files land there and go away with the host). The machine's ~/.ssh is untouched.
 */
import { execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, existsSync, openSync } from "node:fs";
import { chmod, mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { connect } from "node:net";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import type { HostEndpoint, HostKind, QemuHostConfig, SshHostConfig } from "@vpc/cluster";
import type { Logger } from "@vpc/controller";
import {
  qemuTestbedHostDown,
  qemuTestbedHostLeftovers,
  qemuTestbedHostProblems,
  startQemuTestbedHost,
} from "./drivers/qemu.js";
import {
  probeSshTestbedHosts,
  type SshProbeOptions,
  sshTestbedHostDown,
  sshTestbedHostLeftovers,
  sshTestbedHostProblems,
  startSshTestbedHost,
} from "./drivers/ssh.js";
import { HostSetupError } from "./errors.js";
import { processArgs } from "./lock.js";
import { type SshHostState, sshAgentWrapper } from "./ssh-host-remote.js";

const exec = promisify(execFile);

export const TESTBED_STATE_FORMAT = "vpc-testbed/1";
export const TESTBED_STATE_FILE = "testbed.json";

export interface TestbedHostSpec {
  readonly name: string;
  /** Fabric address without prefix (an `ssh` host's address). */
  readonly ip: string;
  /** Default "netns". */
  readonly kind?: HostKind;
  /** `qemu` hosts: the L1 VM's size. */
  readonly qemu?: QemuHostConfig;
  /** `ssh` hosts: how to reach the machine. */
  readonly ssh?: SshHostConfig;
  /** `ssh` hosts: RAM of their VMs (checked against the machine's free /dev/shm). */
  readonly guestMiB?: number;
}

export interface TestbedUpOptions extends SshProbeOptions {
  readonly hosts: readonly TestbedHostSpec[];
  readonly bridgeIp: string;
  readonly prefixLength: number;
  /** Default: a new directory /tmp/vpc-tb-<id>. */
  readonly runDir?: string;
  /** Milliseconds to wait for every dropbear to accept connections (default 10 000). */
  readonly readyTimeoutMs?: number;
  /** qemu hosts: limit for an L1 to boot and answer SSH (default QemuHost's, 180 000). */
  readonly qemuBootTimeoutMs?: number;
  /** qemu hosts: their QemuHost log lines. */
  readonly logger?: Logger;
}

export interface TestbedHost {
  readonly name: string;
  /** Absent in state files of older versions: "netns". */
  readonly kind?: HostKind;
  readonly ip: string;
  readonly sshPort: number;
  /** SSH user (default root). */
  readonly user?: string;
  /** Private key (OpenSSH format) for this host; default the testbed's `clientKey`. */
  readonly keyPath?: string;
  /** Path of @vpc/controller's dist/index.js on the host; default this machine's. */
  readonly agentModule?: string;
  readonly netns: string;
  /** veth end in the root namespace (its peer is `fab0` in the host's namespace). */
  readonly veth: string;
  /** The host's private directory as the host sees it (home, store, run dirs). */
  readonly dir: string;
  /** This machine's directory for the host (agent log); default `dir` (the same for netns hosts). */
  readonly localDir?: string;
  /** What the host sees as /dev/shm (qemu hosts: this machine's directory of the L1's RAM file). */
  readonly shmDir: string;
  dropbearPid?: number;
  /** qemu hosts: the L1's fabric tap (on the testbed bridge). */
  readonly tap?: string;
  /** qemu hosts: where QEMU writes its PID at start-up (recorded before it starts). */
  readonly qemuPidFile?: string;
  /** qemu hosts: the L1's QEMU, once it booted. */
  qemuPid?: number;
  /** ssh hosts: pinned host key, agent source, what `up` made (ssh-host-remote.ts). */
  ssh?: SshHostState;
}

export interface TestbedState {
  readonly format: typeof TESTBED_STATE_FORMAT;
  readonly id: string;
  readonly runDir: string;
  readonly bridge: string;
  readonly bridgeIp: string;
  readonly prefixLength: number;
  /** OpenSSH-format private key the controller logs in with. */
  readonly clientKey: string;
  readonly hosts: TestbedHost[];
  readonly createdAt: string;
  /** Set once every step of `up` finished. */
  ready: boolean;
}

/**
 * What `Cluster` needs to reach the hosts of `state`: one SSH endpoint per host (ssh hosts with
 * their pinned key, the mount-namespace wrapper and the image `up` found there) and the
 * controller's directory inside the run directory.
 */
export function clusterHosts(state: TestbedState): { hosts: HostEndpoint[]; controllerDir: string } {
  return {
    controllerDir: join(state.runDir, "controller"),
    hosts: state.hosts.map((h) => ({
      name: h.name,
      address: h.ip,
      port: h.sshPort,
      user: h.user ?? "root",
      keyPath: h.keyPath ?? state.clientKey,
      dir: h.dir,
      logDir: h.localDir ?? h.dir,
      ...(h.agentModule === undefined ? {} : { agentModule: h.agentModule }),
      ...(h.kind === "ssh" && h.ssh
        ? {
            hostKey: h.ssh.hostKey,
            wrapCommand: sshAgentWrapper({ dir: h.dir, shmDir: h.shmDir, isolated: h.ssh.isolated }),
            ...(h.ssh.imageDir === undefined ? {} : { imageDir: h.ssh.imageDir }),
          }
        : {}),
    })),
  };
}

async function run(op: string, cmd: string, args: readonly string[]): Promise<string> {
  try {
    return (await exec(cmd, [...args], { maxBuffer: 1 << 20 })).stdout;
  } catch (cause) {
    const stderr = (cause as { stderr?: string }).stderr?.trim();
    throw new HostSetupError(op, `${cmd} ${args.join(" ")} failed${stderr ? `: ${stderr}` : ""}`, { cause });
  }
}

async function saveState(state: TestbedState): Promise<void> {
  const path = join(state.runDir, TESTBED_STATE_FILE);
  await writeFile(`${path}.tmp`, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
  await rename(`${path}.tmp`, path);
}

export async function readTestbedState(runDir: string): Promise<TestbedState> {
  const path = join(runDir, TESTBED_STATE_FILE);
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(path, "utf8"));
  } catch (cause) {
    throw new HostSetupError("read-state", `no readable ${path}`, { cause });
  }
  const s = parsed as TestbedState;
  if (s.format !== TESTBED_STATE_FORMAT)
    throw new HostSetupError("read-state", `${path}: not ${TESTBED_STATE_FORMAT}`);
  return s;
}

function waitForPort(host: string, port: number, deadline: number): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const attempt = (): void => {
      const sock = connect({ host, port });
      sock.once("connect", () => {
        sock.destroy();
        resolvePromise();
      });
      sock.once("error", (e) => {
        sock.destroy();
        if (Date.now() > deadline) reject(e);
        else setTimeout(attempt, 100);
      });
    };
    attempt();
  });
}

/**
 * Creates the bridge, one namespace + veth + dropbear per host. On failure everything made so
 * far is removed before the error is rethrown.
 */
export async function testbedUp(options: TestbedUpOptions): Promise<TestbedState> {
  // ssh hosts are checked before anything is created (a failure leaves nothing to undo).
  const sshProbes = await probeSshTestbedHosts(options.hosts, options);
  const id = randomBytes(2).toString("hex");
  const runDir = resolve(options.runDir ?? join("/tmp", `vpc-tb-${id}`));
  await mkdir(runDir, { recursive: true, mode: 0o700 });
  const state: TestbedState = {
    format: TESTBED_STATE_FORMAT,
    id,
    runDir,
    bridge: `vpcb${id}`,
    bridgeIp: options.bridgeIp,
    prefixLength: options.prefixLength,
    clientKey: join(runDir, "client_key"),
    hosts: [],
    createdAt: new Date().toISOString(),
    ready: false,
  };
  await saveState(state);
  try {
    const hostKey = join(runDir, "host_key.dropbear");
    await run("keygen", "dropbearkey", ["-t", "ed25519", "-f", hostKey]);
    const keyOut = await run("keygen", "dropbearkey", ["-t", "ed25519", "-f", `${state.clientKey}.dropbear`]);
    const pub = keyOut.split("\n").find((l) => l.startsWith("ssh-ed25519 "));
    if (!pub) throw new HostSetupError("keygen", "dropbearkey printed no public key line");
    // qemu hosts read it at boot through their share of this machine's root.
    const pubFile = `${state.clientKey}.pub`;
    await writeFile(pubFile, `${pub}\n`, { mode: 0o644 });
    // ssh2 does not read dropbear's own key format.
    await run("keygen", "dropbearconvert", [
      "dropbear",
      "openssh",
      `${state.clientKey}.dropbear`,
      state.clientKey,
    ]);

    // ssh hosts are reached over this machine's own network: a testbed of only ssh hosts has no bridge.
    if (options.hosts.some((h) => h.kind !== "ssh")) {
      await run("bridge", "ip", ["link", "add", state.bridge, "type", "bridge"]);
      await saveState(state);
      await run("bridge", "ip", [
        "addr",
        "add",
        `${state.bridgeIp}/${state.prefixLength}`,
        "dev",
        state.bridge,
      ]);
      await run("bridge", "ip", ["link", "set", state.bridge, "up"]);
    }

    // One writer at a time: qemu hosts boot in parallel and each records itself.
    let saving = Promise.resolve();
    const save = (): Promise<void> => {
      saving = saving.then(() => saveState(state));
      return saving;
    };
    for (const spec of options.hosts) {
      if (spec.kind === "qemu") continue;
      if (spec.kind === "ssh") {
        await startSshTestbedHost({ state, spec, probe: sshProbes.get(spec.name)!, save });
        continue;
      }
      if ((spec.kind ?? "netns") !== "netns")
        throw new HostSetupError("host-kind", `host ${spec.name}: ${spec.kind} hosts are not supported yet`, {
          hostId: spec.name,
        });
      const host: TestbedHost = {
        name: spec.name,
        ip: spec.ip,
        sshPort: 22,
        netns: `vpc-${id}-${spec.name}`,
        veth: `vpc${id}${spec.name}`.slice(0, 15),
        dir: join(runDir, spec.name),
        shmDir: join("/dev/shm", `vpc-tb-${id}`, spec.name),
      };
      state.hosts.push(host);
      await saveState(state);
      await mkdir(join(host.dir, "home", ".ssh"), { recursive: true, mode: 0o700 });
      await chmod(join(host.dir, "home"), 0o700);
      await writeFile(join(host.dir, "home", ".ssh", "authorized_keys"), `${pub}\n`, { mode: 0o600 });
      await mkdir(join(host.dir, "tmp"), { recursive: true, mode: 0o700 });
      await mkdir(host.shmDir, { recursive: true, mode: 0o700 });
      await run("netns", "ip", ["netns", "add", host.netns]);
      await run("veth", "ip", [
        "link",
        "add",
        host.veth,
        "type",
        "veth",
        "peer",
        "name",
        "fab0",
        "netns",
        host.netns,
      ]);
      await run("veth", "ip", ["link", "set", host.veth, "master", state.bridge, "up"]);
      await run("veth", "ip", [
        "-n",
        host.netns,
        "addr",
        "add",
        `${host.ip}/${state.prefixLength}`,
        "dev",
        "fab0",
      ]);
      await run("veth", "ip", ["-n", host.netns, "link", "set", "fab0", "up"]);
      await run("veth", "ip", ["-n", host.netns, "link", "set", "lo", "up"]);

      const log = openSync(join(host.dir, "dropbear.log"), "a");
      const child = spawn(
        "ip",
        [
          "netns",
          "exec",
          host.netns,
          "unshare",
          "-m",
          "--propagation",
          "private",
          "sh",
          "-c",
          'mount --bind "$1" /root && mount --bind "$2" /dev/shm && exec dropbear -F -E -s -m -r "$3" -p "$4:22" -P "$5"',
          "sh",
          join(host.dir, "home"),
          host.shmDir,
          hostKey,
          host.ip,
          join(host.dir, "dropbear.pid"),
        ],
        { detached: true, stdio: ["ignore", log, log] },
      );
      closeSync(log);
      // ip, unshare and sh each exec the next: this PID is dropbear's.
      if (child.pid !== undefined) host.dropbearPid = child.pid;
      child.unref();
      await saveState(state);
    }
    // Every L1 boots at once (tens of seconds each under TCG); a failed one fails `up` only after
    // the others settled, so that the clean-up below never races a boot in flight.
    const qemuBoots = await Promise.allSettled(
      options.hosts
        .filter((spec) => spec.kind === "qemu")
        .map(async (spec) => {
          if (spec.qemu === undefined)
            throw new HostSetupError("host-kind", `host ${spec.name}: qemu host without its L1 size`, {
              hostId: spec.name,
            });
          return startQemuTestbedHost({
            state,
            name: spec.name,
            ip: spec.ip,
            qemu: spec.qemu,
            publicKeyFile: pubFile,
            save,
            ...(options.qemuBootTimeoutMs === undefined ? {} : { bootTimeoutMs: options.qemuBootTimeoutMs }),
            ...(options.logger === undefined ? {} : { logger: options.logger }),
          });
        }),
    );
    const failed = qemuBoots.find((r) => r.status === "rejected");
    if (failed) throw failed.reason;
    const deadline = Date.now() + (options.readyTimeoutMs ?? 10_000);
    for (const h of state.hosts) {
      await waitForPort(h.ip, h.sshPort, deadline).catch((cause: unknown) => {
        throw new HostSetupError("dropbear", `host ${h.name}: ssh at ${h.ip}:22 not reachable`, {
          hostId: h.name,
          cause,
        });
      });
    }
    state.ready = true;
    await saveState(state);
    return state;
  } catch (e) {
    for (const p of sshProbes.values()) p.conn.end();
    await testbedDown(runDir).catch(() => undefined);
    throw e;
  }
}

/** The command line of `pid` (arguments joined by spaces), undefined once it is gone. */
export function processCmdline(pid: number): string | undefined {
  // Synchronous (processArgs) keeps the check and the kill close together.
  return processArgs(pid)?.join(" ");
}

async function netnsPids(netns: string): Promise<number[]> {
  try {
    const out = (await exec("ip", ["netns", "pids", netns])).stdout;
    return out
      .split("\n")
      .map((l) => Number(l.trim()))
      .filter((n) => Number.isInteger(n) && n > 0);
  } catch {
    return [];
  }
}

export async function linkExists(name: string): Promise<boolean> {
  try {
    await exec("ip", ["link", "show", name]);
    return true;
  } catch {
    return false;
  }
}

async function netnsExists(name: string): Promise<boolean> {
  return existsSync(join("/run/netns", name));
}

/**
 * Removes everything `testbedUp` recorded in `runDir`: processes inside each host namespace
 * (dropbear, host agents, QEMU), namespaces, veths, the bridge, shm and the run directory.
 * Returns what was removed. Safe to run twice.
 */
export async function testbedDown(runDir: string, options: { keepRunDir?: boolean } = {}): Promise<string[]> {
  const state = await readTestbedState(runDir);
  const removed: string[] = [];
  const errors: unknown[] = [];
  // Best effort: every step runs even when an earlier one failed; the first failure is rethrown.
  const step = async (what: string, f: () => Promise<unknown>): Promise<void> => {
    try {
      await f();
      removed.push(what);
    } catch (e) {
      errors.push(e);
    }
  };
  for (const h of state.hosts) {
    if (h.kind === "qemu") {
      await qemuTestbedHostDown(state, h, step);
      continue;
    }
    if (h.kind === "ssh") {
      await sshTestbedHostDown(h, removed, step);
      continue;
    }
    const pid = h.dropbearPid;
    // Only our dropbear: its command line names this run's directory (guards against PID reuse).
    if (pid !== undefined && processCmdline(pid)?.includes(state.runDir)) {
      await step(`pid ${pid} (dropbear ${h.name})`, async () => process.kill(pid, "SIGKILL"));
    }
    if (await netnsExists(h.netns)) {
      // Every process still in the host's namespace is the host's: agents, QEMUs, SSH sessions.
      for (let round = 0; round < 40; round++) {
        const pids = await netnsPids(h.netns);
        if (pids.length === 0) break;
        for (const p of pids) {
          try {
            process.kill(p, "SIGKILL");
            if (round === 0) removed.push(`pid ${p} (in ${h.netns})`);
          } catch {
            // exited meanwhile
          }
        }
        await new Promise((r) => setTimeout(r, 50));
      }
      await step(`netns ${h.netns}`, () => run("netns", "ip", ["netns", "del", h.netns]));
    }
    // Deleting the namespace destroys its veth end and with it the pair, asynchronously.
    for (let i = 0; i < 40 && (await linkExists(h.veth)); i++) await new Promise((r) => setTimeout(r, 25));
    if (await linkExists(h.veth))
      await step(`link ${h.veth}`, () => run("veth", "ip", ["link", "del", h.veth]));
  }
  if (await linkExists(state.bridge))
    await step(`link ${state.bridge}`, () => run("bridge", "ip", ["link", "del", state.bridge]));
  const shmRoot = join("/dev/shm", `vpc-tb-${state.id}`);
  if (existsSync(shmRoot)) await step(shmRoot, () => rm(shmRoot, { recursive: true, force: true }));
  if (!options.keepRunDir && errors.length === 0)
    await step(state.runDir, () => rm(state.runDir, { recursive: true, force: true }));
  if (errors.length > 0) throw errors[0];
  return removed;
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

/** What is wrong with one host of a testbed that `up` made (empty: healthy). */
export async function testbedHostProblems(state: TestbedState, h: TestbedHost): Promise<string[]> {
  if (h.kind === "qemu") return qemuTestbedHostProblems(state, h);
  if (h.kind === "ssh") return sshTestbedHostProblems(h);
  const p: string[] = [];
  if (!(await netnsExists(h.netns))) p.push(`namespace ${h.netns} is missing`);
  if (!(await linkExists(h.veth))) p.push(`link ${h.veth} is missing`);
  if (h.dropbearPid === undefined || !processCmdline(h.dropbearPid)?.includes(state.runDir))
    p.push(`dropbear (pid ${h.dropbearPid ?? "?"}) is not running`);
  else if (!(await portOpen(h.ip, h.sshPort, 2000))) p.push(`ssh ${h.ip}:${h.sshPort} does not answer`);
  return p;
}

/** What of a testbed still exists (for `status` and leak checks in tests). */
export async function testbedLeftovers(state: TestbedState): Promise<string[]> {
  const left: string[] = [];
  for (const h of state.hosts) {
    if (h.kind === "qemu") {
      left.push(...(await qemuTestbedHostLeftovers(state, h)));
      continue;
    }
    if (h.kind === "ssh") {
      left.push(...(await sshTestbedHostLeftovers(h)));
      continue;
    }
    if (await netnsExists(h.netns)) left.push(`netns ${h.netns}`);
    if (await linkExists(h.veth)) left.push(`link ${h.veth}`);
    if (h.dropbearPid !== undefined && processCmdline(h.dropbearPid)?.includes(state.runDir))
      left.push(`pid ${h.dropbearPid}`);
  }
  if (await linkExists(state.bridge)) left.push(`link ${state.bridge}`);
  if (existsSync(join("/dev/shm", `vpc-tb-${state.id}`))) left.push(`/dev/shm/vpc-tb-${state.id}`);
  return left;
}
