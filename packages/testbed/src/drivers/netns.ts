/**
 * Emulated *netns hosts* (ARCHITECTURE.md §5): each host is a network namespace with its own
 * loopback, a veth into the testbed's fabric bridge in the root namespace, and a dropbear SSH
 * server for the controller.
 *
 * dropbear 2022.83 has no option for an authorized_keys path, so each host's dropbear runs in a
 * private mount namespace (`ip netns exec` + `unshare -m`) with the host's own directory bound
 * over /root (its authorized_keys) and another over /dev/shm (the host's own shm: QEMU RAM files
 * and dirty-log files land there and go away with the host). The machine's ~/.ssh is untouched.
 */
import { execFile, spawn } from "node:child_process";
import { closeSync, existsSync, openSync } from "node:fs";
import { chmod, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import type { TestbedHost, TestbedHostSpec, TestbedState } from "../state.js";
import type { HostDriver, Removal, StartContext } from "./driver.js";
import { linkExists, linkGone, portOpen, processCmdline, run } from "./system.js";

const exec = promisify(execFile);

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

function netnsExists(name: string): boolean {
  return existsSync(join("/run/netns", name));
}

/** Ours only: its command line names this testbed's run directory (PID reuse guard). */
function ourDropbear(state: TestbedState, h: TestbedHost): number | undefined {
  const pid = h.dropbearPid;
  return pid !== undefined && processCmdline(pid)?.includes(state.runDir) ? pid : undefined;
}

/** Records the host, then makes its directories, namespace, veth and dropbear. */
async function startNetnsHost(ctx: StartContext, spec: TestbedHostSpec): Promise<void> {
  const { state } = ctx;
  const host: TestbedHost = {
    name: spec.name,
    ip: spec.ip,
    sshPort: 22,
    netns: `vpc-${state.id}-${spec.name}`,
    veth: `vpc${state.id}${spec.name}`.slice(0, 15),
    dir: join(state.runDir, spec.name),
    shmDir: join("/dev/shm", `vpc-tb-${state.id}`, spec.name),
  };
  state.hosts.push(host);
  await ctx.save();
  await mkdir(join(host.dir, "home", ".ssh"), { recursive: true, mode: 0o700 });
  await chmod(join(host.dir, "home"), 0o700);
  await writeFile(join(host.dir, "home", ".ssh", "authorized_keys"), `${ctx.publicKey}\n`, { mode: 0o600 });
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
      ctx.dropbearHostKey,
      host.ip,
      join(host.dir, "dropbear.pid"),
    ],
    { detached: true, stdio: ["ignore", log, log] },
  );
  closeSync(log);
  // ip, unshare and sh each exec the next: this PID is dropbear's.
  if (child.pid !== undefined) host.dropbearPid = child.pid;
  child.unref();
  await ctx.save();
}

export const netnsDriver: HostDriver = {
  kind: "netns",
  onBridge: true,

  async probe(specs) {
    return {
      // One after the other: each records itself before it makes anything.
      async start(ctx) {
        for (const spec of specs) await startNetnsHost(ctx, spec);
      },
      release() {},
    };
  },

  async problems(state, h) {
    const p: string[] = [];
    if (!netnsExists(h.netns)) p.push(`namespace ${h.netns} is missing`);
    if (!(await linkExists(h.veth))) p.push(`link ${h.veth} is missing`);
    if (ourDropbear(state, h) === undefined) p.push(`dropbear (pid ${h.dropbearPid ?? "?"}) is not running`);
    else if (!(await portOpen(h.ip, h.sshPort, 2000))) p.push(`ssh ${h.ip}:${h.sshPort} does not answer`);
    return p;
  },

  async leftovers(state, h) {
    const left: string[] = [];
    if (netnsExists(h.netns)) left.push(`netns ${h.netns}`);
    if (await linkExists(h.veth)) left.push(`link ${h.veth}`);
    const pid = ourDropbear(state, h);
    if (pid !== undefined) left.push(`pid ${pid}`);
    return left;
  },

  async down(state, h, r: Removal) {
    const pid = ourDropbear(state, h);
    if (pid !== undefined)
      await r.step(`pid ${pid} (dropbear ${h.name})`, async () => process.kill(pid, "SIGKILL"));
    if (netnsExists(h.netns)) {
      // Every process still in the host's namespace is the host's: agents, QEMUs, SSH sessions.
      for (let round = 0; round < 40; round++) {
        const pids = await netnsPids(h.netns);
        if (pids.length === 0) break;
        for (const p of pids) {
          try {
            process.kill(p, "SIGKILL");
            if (round === 0) r.removed(`pid ${p} (in ${h.netns})`);
          } catch {
            // exited meanwhile
          }
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      await r.step(`netns ${h.netns}`, () => run("netns", "ip", ["netns", "del", h.netns]));
    }
    // Deleting the namespace destroys its veth end and with it the pair, asynchronously.
    if (!(await linkGone(h.veth)))
      await r.step(`link ${h.veth}`, () => run("veth", "ip", ["link", "del", h.veth]));
  },
};
