/**
 * The hosts of one testbed run directory: `testbedUp` makes them, `testbedDown` removes them,
 * `testbedHostProblems` and `testbedLeftovers` check them. Each kind of host is a driver
 * (drivers/: `netns`, `qemu`, `ssh`); this module holds what they share — the run directory,
 * the client key, the fabric bridge, the state file — and loops over the drivers.
 */
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { connect } from "node:net";
import { join, resolve } from "node:path";
import { HOST_KINDS, type HostEndpoint, type HostKind } from "@vpc/cluster";
import type { HostDriver, ProbedHosts } from "./drivers/driver.js";
import { netnsDriver } from "./drivers/netns.js";
import { qemuDriver } from "./drivers/qemu.js";
import { sshDriver } from "./drivers/ssh.js";
import { linkExists, run } from "./drivers/system.js";
import { HostSetupError } from "./errors.js";
import { sshAgentWrapper } from "./ssh-host-remote.js";
import {
  readTestbedState,
  saveTestbedState,
  TESTBED_STATE_FORMAT,
  type TestbedHost,
  type TestbedState,
  type TestbedUpOptions,
} from "./state.js";

const DRIVERS: Readonly<Record<HostKind, HostDriver>> = {
  netns: netnsDriver,
  qemu: qemuDriver,
  ssh: sshDriver,
};

/** The driver of a host kind; hosts recorded without a kind are netns hosts (older state files). */
function driverOf(kind: string | undefined, hostId: string): HostDriver {
  const d = (DRIVERS as Record<string, HostDriver | undefined>)[kind ?? "netns"];
  if (d === undefined)
    throw new HostSetupError("host-kind", `host ${hostId}: ${kind} hosts are not supported`, { hostId });
  return d;
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
 * Probes every host (before anything exists), then makes the run directory, the keys, the
 * bridge and the hosts, kind by kind. On failure everything made so far is removed before the
 * error is rethrown.
 */
export async function testbedUp(options: TestbedUpOptions): Promise<TestbedState> {
  for (const spec of options.hosts) driverOf(spec.kind, spec.name);
  const groups = HOST_KINDS.map((kind) => ({
    driver: DRIVERS[kind],
    specs: options.hosts.filter((spec) => (spec.kind ?? "netns") === kind),
  })).filter((g) => g.specs.length > 0);
  // ssh hosts fail here when they cannot be used (a failure leaves nothing to undo).
  const probed: ProbedHosts[] = [];
  try {
    for (const g of groups) probed.push(await g.driver.probe(g.specs, options));
  } catch (e) {
    for (const p of probed) p.release();
    throw e;
  }
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
  await saveTestbedState(state);
  try {
    const dropbearHostKey = join(runDir, "host_key.dropbear");
    await run("keygen", "dropbearkey", ["-t", "ed25519", "-f", dropbearHostKey]);
    const keyOut = await run("keygen", "dropbearkey", ["-t", "ed25519", "-f", `${state.clientKey}.dropbear`]);
    const publicKey = keyOut.split("\n").find((l) => l.startsWith("ssh-ed25519 "));
    if (!publicKey) throw new HostSetupError("keygen", "dropbearkey printed no public key line");
    // qemu hosts read it at boot through their share of this machine's root.
    const publicKeyFile = `${state.clientKey}.pub`;
    await writeFile(publicKeyFile, `${publicKey}\n`, { mode: 0o644 });
    // ssh2 does not read dropbear's own key format.
    await run("keygen", "dropbearconvert", [
      "dropbear",
      "openssh",
      `${state.clientKey}.dropbear`,
      state.clientKey,
    ]);

    if (groups.some((g) => g.driver.onBridge)) {
      await run("bridge", "ip", ["link", "add", state.bridge, "type", "bridge"]);
      await saveTestbedState(state);
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
      saving = saving.then(() => saveTestbedState(state));
      return saving;
    };
    const ctx = { state, options, publicKey, publicKeyFile, dropbearHostKey, save };
    for (const p of probed) await p.start(ctx);
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
    await saveTestbedState(state);
    return state;
  } catch (e) {
    await testbedDown(runDir).catch(() => undefined);
    throw e;
  } finally {
    for (const p of probed) p.release();
  }
}

/**
 * Removes everything `testbedUp` recorded in `runDir`: each host by its driver, then the bridge,
 * the shm root and the run directory. Returns what was removed. Safe to run twice.
 */
export async function testbedDown(runDir: string, options: { keepRunDir?: boolean } = {}): Promise<string[]> {
  const state = await readTestbedState(runDir);
  const removed: string[] = [];
  const errors: unknown[] = [];
  // Best effort: every step runs even when an earlier one failed; the first failure is rethrown.
  const removal = {
    async step(what: string, f: () => Promise<unknown>): Promise<void> {
      try {
        await f();
        removed.push(what);
      } catch (e) {
        errors.push(e);
      }
    },
    removed(what: string): void {
      removed.push(what);
    },
  };
  for (const h of state.hosts) await driverOf(h.kind, h.name).down(state, h, removal);
  if (await linkExists(state.bridge))
    await removal.step(`link ${state.bridge}`, () => run("bridge", "ip", ["link", "del", state.bridge]));
  const shmRoot = join("/dev/shm", `vpc-tb-${state.id}`);
  if (existsSync(shmRoot)) await removal.step(shmRoot, () => rm(shmRoot, { recursive: true, force: true }));
  if (!options.keepRunDir && errors.length === 0)
    await removal.step(state.runDir, () => rm(state.runDir, { recursive: true, force: true }));
  if (errors.length > 0) throw errors[0];
  return removed;
}

/** What is wrong with one host of a testbed that `up` made (empty: healthy). */
export function testbedHostProblems(state: TestbedState, h: TestbedHost): Promise<string[]> {
  return driverOf(h.kind, h.name).problems(state, h);
}

/** What of a testbed still exists (for `status` and leak checks in tests). */
export async function testbedLeftovers(state: TestbedState): Promise<string[]> {
  const left: string[] = [];
  for (const h of state.hosts) left.push(...(await driverOf(h.kind, h.name).leftovers(state, h)));
  if (await linkExists(state.bridge)) left.push(`link ${state.bridge}`);
  if (existsSync(join("/dev/shm", `vpc-tb-${state.id}`))) left.push(`/dev/shm/vpc-tb-${state.id}`);
  return left;
}
