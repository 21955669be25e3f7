/**
 * `qemu` hosts of a testbed (ARCHITECTURE.md §5): each is an L1 `QemuHost` on this machine's
 * root, its fabric tap enslaved to the testbed bridge, the testbed's client key authorised, its
 * QEMU runtime directory under the testbed's run directory and its RAM file under the testbed's
 * shm root. What `down` needs after a crash of the process that started it — tap name, pid file
 * path, directories — is recorded in testbed.json before QEMU starts; QEMU writes its PID to
 * the pid file at once, so `down` finds it even when this process died in the middle of a boot.
 *
 * Directories: `localDir` (this machine: `<runDir>/<host>`, the agent log and the L1's QEMU
 * runtime dir) and `dir` (inside the L1: `/run/vpc-host`, on the L1's own tmpfs, so host stores,
 * vnet sockets and the agent's TMPDIR live in the L1's RAM and vanish with it). The L1 sees this
 * machine's files at the same paths, so its agent finds node, the controller's dist and the
 * guest image where the controller does.
 */
import { readFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { QemuHostConfig } from "@vpc/cluster";
import { defaultAgentModule } from "@vpc/cluster";
import type { Logger } from "@vpc/controller";
import { HostSetupError } from "../errors.js";
import { QemuHost } from "../qemu-host.js";
import type { TestbedHost, TestbedState } from "../state.js";
import type { HostDriver, Removal } from "./driver.js";
import { linkExists, linkGone, portOpen, processCmdline, run } from "./system.js";

/** The host agent's directory inside every L1 (its own tmpfs /run: RAM of the L1). */
const QEMU_HOST_DIR = "/run/vpc-host";

/** The L1s this process started, by testbed run directory and host name (for an in-process `down`). */
const live = new Map<string, QemuHost>();
const liveKey = (runDir: string, name: string): string => `${runDir}\0${name}`;

/** Tap of a qemu host (≤ 15 bytes; netns hosts' veths are `vpc<id><name>`). */
function qemuTapName(testbedId: string, host: string): string {
  return `vpq${testbedId}${host}`.slice(0, 15);
}

interface QemuTestbedHostInput {
  readonly state: TestbedState;
  readonly name: string;
  /** Fabric address without prefix. */
  readonly ip: string;
  readonly qemu: QemuHostConfig;
  /** authorized_keys file with the testbed's client key (read by the L1 at boot). */
  readonly publicKeyFile: string;
  /** Persists `state` (serialised by the caller: hosts start in parallel). */
  readonly save: () => Promise<void>;
  readonly bootTimeoutMs?: number;
  readonly logger?: Logger;
}

/**
 * Records the host in `state`, then boots its L1 and prepares the agent's directory inside.
 * On failure the QemuHost has cleaned up after itself; the recorded entry lets `down` finish.
 */
async function startQemuTestbedHost(i: QemuTestbedHostInput): Promise<TestbedHost> {
  const { state, name } = i;
  const localDir = join(state.runDir, name);
  const host: TestbedHost = {
    name,
    kind: "qemu",
    ip: i.ip,
    sshPort: 22,
    netns: "",
    veth: "",
    dir: QEMU_HOST_DIR,
    localDir,
    shmDir: join("/dev/shm", `vpc-tb-${state.id}`, name),
    tap: qemuTapName(state.id, name),
    qemuPidFile: join(localDir, "qemu.pid"),
  };
  state.hosts.push(host);
  await i.save();
  const runRoot = join(localDir, "qemu");
  await mkdir(runRoot, { recursive: true, mode: 0o700 });
  await mkdir(host.shmDir, { recursive: true, mode: 0o700 });
  const qh = await QemuHost.start({
    name,
    memMiB: i.qemu.memMiB,
    cpus: i.qemu.cpus,
    fabric: { ip: `${i.ip}/${state.prefixLength}`, tap: host.tap!, bridge: state.bridge },
    authorizedKeys: [i.publicKeyFile],
    runDir: runRoot,
    shmRoot: host.shmDir,
    pidFile: host.qemuPidFile!,
    ...(i.bootTimeoutMs === undefined ? {} : { bootTimeoutMs: i.bootTimeoutMs }),
    ...(i.logger === undefined ? {} : { logger: i.logger }),
  });
  live.set(liveKey(state.runDir, name), qh);
  host.qemuPid = qh.pid;
  await i.save();
  // The agent's TMPDIR (Cluster sets it to <dir>/tmp); /run is a fresh tmpfs in every L1. Then
  // one import of the agent's module: its first start reads Node (~100 MB) and the controller's
  // dist over 9p, which under TCG can outlast the controller's 30 s limit for the agent's `init`;
  // afterwards they sit in the L1's page cache (cache=loose).
  const warm = `import(${JSON.stringify(defaultAgentModule())})`;
  const prepare = `mkdir -p ${QEMU_HOST_DIR}/tmp && node --input-type=module -e '${warm}'`;
  await qh.run(prepare, { timeoutMs: 300_000 }).catch((cause: unknown) => {
    throw new HostSetupError("qemu-host", `host ${name}: cannot prepare ${QEMU_HOST_DIR} and the agent`, {
      hostId: name,
      cause,
    });
  });
  return host;
}

/** The recorded QEMU PID, or the one its pid file holds (the recording process may have died first). */
function qemuPid(h: TestbedHost): number | undefined {
  if (h.qemuPid !== undefined) return h.qemuPid;
  if (h.qemuPidFile === undefined) return undefined;
  try {
    const n = Number(readFileSync(h.qemuPidFile, "utf8").trim());
    return Number.isInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

/** Ours only: the process's command line names this testbed's run directory (PID reuse guard). */
function ourQemu(state: TestbedState, h: TestbedHost): number | undefined {
  const pid = qemuPid(h);
  return pid !== undefined && processCmdline(pid)?.includes(state.runDir) ? pid : undefined;
}

/**
 * Every L1 boots at once (tens of seconds each under TCG); a failed one fails `up` only after
 * the others settled, so that the clean-up of `up` never races a boot in flight. Removing a qemu
 * host: its L1 (in-process handle first, else SIGKILL by recorded PID, checked against its command
 * line — never by name), then its tap if QEMU did not take it along. Directories go with the
 * testbed's run and shm directories.
 */
export const qemuDriver: HostDriver = {
  kind: "qemu",
  onBridge: true,

  async probe(specs) {
    for (const spec of specs)
      if (spec.qemu === undefined)
        throw new HostSetupError("host-kind", `host ${spec.name}: qemu host without its L1 size`, {
          hostId: spec.name,
        });
    return {
      async start(ctx) {
        const boots = await Promise.allSettled(
          specs.map((spec) =>
            startQemuTestbedHost({
              state: ctx.state,
              name: spec.name,
              ip: spec.ip,
              qemu: spec.qemu!,
              publicKeyFile: ctx.publicKeyFile,
              save: ctx.save,
              ...(ctx.options.qemuBootTimeoutMs === undefined
                ? {}
                : { bootTimeoutMs: ctx.options.qemuBootTimeoutMs }),
              ...(ctx.options.logger === undefined ? {} : { logger: ctx.options.logger }),
            }),
          ),
        );
        const failed = boots.find((r) => r.status === "rejected");
        if (failed) throw failed.reason;
      },
      release() {},
    };
  },

  async problems(state, h) {
    const p: string[] = [];
    if (ourQemu(state, h) === undefined) p.push(`QEMU of the L1 (pid ${qemuPid(h) ?? "?"}) is not running`);
    else if (!(await portOpen(h.ip, h.sshPort, 2000))) p.push(`ssh ${h.ip}:${h.sshPort} does not answer`);
    if (h.tap !== undefined && !(await linkExists(h.tap))) p.push(`link ${h.tap} is missing`);
    return p;
  },

  async leftovers(state, h) {
    const left: string[] = [];
    const pid = ourQemu(state, h);
    if (pid !== undefined) left.push(`pid ${pid}`);
    if (h.tap !== undefined && (await linkExists(h.tap))) left.push(`link ${h.tap}`);
    return left;
  },

  async down(state, h, r: Removal) {
    const key = liveKey(state.runDir, h.name);
    const qh = live.get(key);
    if (qh !== undefined) {
      live.delete(key);
      await r.step(`pid ${qh.pid} (qemu host ${h.name})`, () => qh.kill());
    }
    const pid = ourQemu(state, h);
    if (pid !== undefined) {
      await r.step(`pid ${pid} (qemu host ${h.name})`, async () => {
        process.kill(pid, "SIGKILL");
        // The tap goes when QEMU has exited; a zombie's command line is empty, so this ends.
        for (let i = 0; i < 200 && processCmdline(pid)?.includes(state.runDir); i++)
          await new Promise((resolve) => setTimeout(resolve, 25));
      });
    }
    const tap = h.tap;
    if (tap !== undefined && !(await linkGone(tap)))
      await r.step(`link ${tap}`, () => run("tap", "ip", ["link", "del", tap]));
  },
};
