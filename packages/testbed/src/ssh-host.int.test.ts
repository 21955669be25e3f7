import { execFile, spawn } from "node:child_process";
import { randomBytes, randomInt } from "node:crypto";
import { closeSync, existsSync, openSync, readdirSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { connect } from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";
import {
  Cluster,
  type ClusterConfig,
  defaultAgentModule,
  HostClient,
  validateClusterConfig,
} from "@vpc/cluster";
import { defaultGuestImageDir, silentLogger } from "@vpc/controller";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testbedHostSpecs } from "./config-hosts.js";
import { clusterHosts, testbedDown, testbedHostProblems, testbedLeftovers, testbedUp } from "./hosts.js";
import { probeSshHost } from "./ssh-host-remote.js";
import type { TestbedState } from "./state.js";
import { parseMemcheck, waitFor } from "./testing/memcheck.js";

// The `ssh` kind without a second machine: a network namespace with its own veth to the root
// namespace, its own random private /30 and a dropbear started here by hand (authorized_keys
// through a private mount namespace, keys from dropbearkey) is declared as an ssh host. `up`
// probes it and copies the agent (forced, so the copy path is what runs the VM), the cluster
// boots one 192 MiB VM there (the guest image cannot unpack its initramfs in 128 MiB),
// vpc-memcheck runs in it, two global vpc checkpoints are taken, the cluster is killed and
// restored, memcheck is still clean, and `down` removes a SIGKILLed agent's QEMU. Needs root,
// dropbear, `make guest` and a built @vpc/cluster (the copy is of dist/).

const exec = promisify(execFile);
const sh = (cmd: string, args: string[]) => exec(cmd, args, { maxBuffer: 1 << 20 });

function portOpen(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

/** A /30 and a /24 in 172.31/16 and 10.200-249/16 that no interface of this machine uses now. */
async function freePrefixes(): Promise<{ link: string; fabric: string }> {
  const used = (await sh("ip", ["-o", "-4", "addr", "show"])).stdout;
  for (let i = 0; i < 50; i++) {
    const link = `172.31.${randomInt(256)}.${4 * randomInt(64)}`;
    const fabric = `10.${200 + randomInt(50)}.${randomInt(256)}`;
    const linkNet = link.split(".").slice(0, 3).join(".");
    if (!used.includes(` ${linkNet}.`) && !used.includes(` ${fabric}.`)) return { link, fabric };
  }
  throw new Error("no free test prefix");
}

describe("ssh host kind (dropbear in a namespace made by the test)", () => {
  const tag = randomBytes(2).toString("hex");
  const netns = `vpcssh-${tag}`;
  const veth = `vpcs${tag}`;
  let work = "";
  let hostIp = "";
  let dropbearPid: number | undefined;
  let hostKeyFingerprint = "";
  let config: ClusterConfig;
  let state: TestbedState | undefined;
  let cluster: Cluster | undefined;
  const shmBefore = new Set<string>();

  beforeAll(async () => {
    for (const f of await readdir("/dev/shm")) shmBefore.add(f);
    work = await mkdtemp("/tmp/vpc-ssh-it-");
    const { link, fabric } = await freePrefixes();
    const [a, b, c, d] = link.split(".").map(Number) as [number, number, number, number];
    const rootIp = `${a}.${b}.${c}.${d + 1}`;
    hostIp = `${a}.${b}.${c}.${d + 2}`;
    await mkdir(join(work, "home", ".ssh"), { recursive: true, mode: 0o700 });
    const hostKey = join(work, "host_key.dropbear");
    const hk = (await sh("dropbearkey", ["-t", "ed25519", "-f", hostKey])).stdout;
    hostKeyFingerprint = /Fingerprint: (SHA256:\S+)/.exec(hk)![1]!;
    const ck = (await sh("dropbearkey", ["-t", "ed25519", "-f", join(work, "client.dropbear")])).stdout;
    const pub = ck.split("\n").find((l) => l.startsWith("ssh-ed25519 "))!;
    await writeFile(join(work, "home", ".ssh", "authorized_keys"), `${pub}\n`, { mode: 0o600 });
    await sh("dropbearconvert", [
      "dropbear",
      "openssh",
      join(work, "client.dropbear"),
      join(work, "client_key"),
    ]);

    await sh("ip", ["netns", "add", netns]);
    await sh("ip", ["link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns]);
    await sh("ip", ["addr", "add", `${rootIp}/30`, "dev", veth]);
    await sh("ip", ["link", "set", veth, "up"]);
    await sh("ip", ["-n", netns, "addr", "add", `${hostIp}/30`, "dev", "eth0"]);
    await sh("ip", ["-n", netns, "link", "set", "eth0", "up"]);
    await sh("ip", ["-n", netns, "link", "set", "lo", "up"]);
    const log = openSync(join(work, "dropbear.log"), "a");
    const child = spawn(
      "ip",
      [
        "netns",
        "exec",
        netns,
        "unshare",
        "-m",
        "--propagation",
        "private",
        "sh",
        "-c",
        'mount --bind "$1" /root && exec dropbear -F -E -s -r "$2" -p "$3:22" -P "$4"',
        "sh",
        join(work, "home"),
        hostKey,
        hostIp,
        join(work, "dropbear.pid"),
      ],
      { detached: true, stdio: ["ignore", log, log] },
    );
    closeSync(log);
    dropbearPid = child.pid; // ip, unshare and sh exec the next: this is dropbear
    child.unref();
    await waitFor(
      () => portOpen(hostIp, 22),
      (ok) => ok,
      10_000,
    );
    config = validateClusterConfig({
      name: "sshit",
      fabricPrefix: `${fabric}.0/24`,
      dataPrefix: "192.168.231.0/24",
      engine: "vpc",
      hosts: [
        {
          name: "r1",
          kind: "ssh",
          address: hostIp,
          user: "root",
          key: join(work, "client_key"),
          dir: join(work, "remote"),
          vms: [{ name: "sshvm", memMiB: 192 }],
        },
      ],
    });
  });

  afterAll(async () => {
    await cluster?.close().catch(() => undefined);
    if (state) await testbedDown(state.runDir).catch(() => undefined);
    // Only our dropbear: its command line names this test's directory.
    if (dropbearPid !== undefined && existsSync(`/proc/${dropbearPid}/cmdline`)) {
      const cmd = readFileSync(`/proc/${dropbearPid}/cmdline`, "utf8");
      if (cmd.includes(work)) process.kill(dropbearPid, "SIGKILL");
    }
    // Whatever still runs in the namespace (sessions, agents) is this test's.
    const pids = (await sh("ip", ["netns", "pids", netns]).catch(() => ({ stdout: "" }))).stdout;
    for (const p of pids.split("\n").filter(Boolean)) {
      try {
        process.kill(Number(p), "SIGKILL");
      } catch {
        // gone
      }
    }
    await sh("ip", ["netns", "del", netns]).catch(() => undefined);
    await sh("ip", ["link", "del", veth]).catch(() => undefined);
    if (work) await rm(work, { recursive: true, force: true });
    for (const f of await readdir("/dev/shm"))
      if (!shmBefore.has(f) && state && f.startsWith(`vpc-tb-${state.id}-`))
        await rm(join("/dev/shm", f), { recursive: true, force: true });
  });

  it("rejects a missing key, an unreachable host and a wrong host key before creating anything", async () => {
    const spec = testbedHostSpecs(config)[0]!;
    const up = (ssh: object) =>
      testbedUp({
        hosts: [{ ...spec, ssh: { ...spec.ssh!, ...ssh } }],
        bridgeIp: config.fabric.bridgeIp,
        prefixLength: config.fabric.prefixLength,
        runDir: join(work, "never"),
      });
    await expect(up({ key: join(work, "no-such-key") })).rejects.toMatchObject({ op: "ssh-key" });
    await expect(up({ port: 2222 })).rejects.toMatchObject({ op: "ssh-connect" });
    await expect(up({ hostKey: `SHA256:${"A".repeat(43)}` })).rejects.toMatchObject({
      name: "HostKeyError",
      seen: hostKeyFingerprint,
      source: "config",
    });
    // The cluster's own connection checks the pinned key too.
    await expect(
      HostClient.connect({
        hostId: "r1",
        address: hostIp,
        port: 22,
        privateKey: readFileSync(join(work, "client_key")),
        hostKey: `SHA256:${"B".repeat(43)}`,
        logFile: join(work, "never.log"),
        logger: silentLogger,
      }),
    ).rejects.toMatchObject({ name: "HostKeyError", seen: hostKeyFingerprint, source: "pinned" });
    expect(existsSync(join(work, "never"))).toBe(false);
    expect(existsSync(join(work, "remote"))).toBe(false);
  });

  it("copies the agent, boots a VM there, checkpoints, kills and restores it; down leaves nothing", async () => {
    const t0 = performance.now();
    state = await testbedUp({
      hosts: testbedHostSpecs(config),
      bridgeIp: config.fabric.bridgeIp,
      prefixLength: config.fabric.prefixLength,
      runDir: join(work, "run"),
      forceAgentCopy: true,
    });
    const upMs = performance.now() - t0;
    const h = state.hosts[0]!;
    expect(h.ssh).toMatchObject({
      hostKey: hostKeyFingerprint,
      madeDir: true,
      agent: "copy",
      isolated: true,
    });
    expect(h.agentModule).toBe(join(work, "remote", "agent", "node_modules/@vpc/cluster/dist/index.js"));
    process.stderr.write(
      `[ssh] up ${upMs.toFixed(0)} ms; agent copy: ${h.ssh!.copy!.files} files, ` +
        `${(h.ssh!.copy!.bytes / 1e6).toFixed(1)} MB, ${h.ssh!.copy!.ms.toFixed(0)} ms\n`,
    );
    expect(h.ssh!.copy!.bytes).toBeGreaterThan(1e6);
    expect(await testbedHostProblems(state, h)).toEqual([]);
    expect(await testbedLeftovers(state)).toContain(`r1:${join(work, "remote")}`);

    // The same build at the same paths is reused; the copy just made is recognised.
    const again = await probeSshHost(
      { name: "r1", ssh: config.hosts[0]!.ssh!, guestMiB: 192 },
      { pinnedKey: h.ssh!.hostKey, imageDir: defaultGuestImageDir() },
    );
    again.conn.end();
    expect(again.source.how).toBe("same-build");
    // An installed agent named by the config comes first; a wrong path is only a warning.
    const probeWith = async (agentModule: string) => {
      const p = await probeSshHost(
        { name: "r1", ssh: { ...config.hosts[0]!.ssh!, agentModule }, guestMiB: 192 },
        { pinnedKey: h.ssh!.hostKey, imageDir: defaultGuestImageDir() },
      );
      p.conn.end();
      return p;
    };
    expect((await probeWith(defaultAgentModule())).source.how).toBe("configured");
    const wrong = await probeWith("/nonexistent/dist/index.js");
    expect(wrong.source.how).toBe("same-build");
    expect(wrong.checks.find((c) => c.id === "agent-module")?.status).toBe("warn");
    expect(again.buildId).toBe(readFileSync(join(work, "remote", "agent", "BUILD"), "utf8").trim());

    cluster = await Cluster.start({ config, ...clusterHosts(state), bootTimeoutMs: 120_000 });
    await cluster.exec(
      "sshvm",
      "vpc-memcheck -m 16 -w 64 -s 2000 -v 300 >/dev/null 2>/run/memcheck.err </dev/null &",
    );
    const memcheck = async () =>
      parseMemcheck((await cluster!.exec("sshvm", "cat /run/vpc-memcheck")).stdout);
    const first = await waitFor(memcheck, (m) => m.verifies >= 1, 30_000);
    // The VM's RAM lives in the host's own shm directory (the agent's private /dev/shm).
    expect((await readdir(h.shmDir)).some((f) => f.startsWith("vpc-sshvm-"))).toBe(true);

    const e0 = await cluster.checkpoint();
    const e1 = await cluster.checkpoint();
    expect(e0.full).toBe(true);
    expect(e1.full).toBe(false);
    expect(e1.checkpointBytes).toBeGreaterThan(0);
    expect(e1.checkpointBytes).toBeLessThan(e0.checkpointBytes);
    expect(e1.soloDowntimeMs.sshvm).toBeGreaterThan(0);
    expect(await cluster.committedEpochs()).toEqual([0, 1]);

    await cluster.kill();
    cluster = undefined;
    const { cluster: restored, result } = await Cluster.restore({
      config,
      ...clusterHosts(state),
      bootTimeoutMs: 120_000,
    });
    cluster = restored;
    expect(result.epoch).toBe(1);
    process.stderr.write(
      `[ssh] epoch 0: ${(e0.checkpointBytes / 1e6).toFixed(1)} MB, downtime ${e0.vcDowntimeMs.toFixed(0)} ms; ` +
        `epoch 1: ${(e1.checkpointBytes / 1e6).toFixed(1)} MB, downtime ${e1.vcDowntimeMs.toFixed(0)} ms; ` +
        `restore ${result.totalMs.toFixed(0)} ms\n`,
    );
    const after = await memcheck();
    expect(after.nonce).toBe(first.nonce);
    const later = await waitFor(memcheck, (m) => m.verifies >= after.verifies + 2, 30_000);
    expect(later.failures).toBe(0);
    expect((await cluster.exec("sshvm", "cat /run/memcheck.err")).stdout).toBe("");

    // The host fails hard: its agent is SIGKILLed and leaves its QEMU behind; `down` must find
    // both (the machine is this one, so /proc shows them).
    const agentPid = Number(readFileSync(join(work, "remote", "agent.pid"), "utf8"));
    const ours = (): number[] =>
      readdirSync("/proc")
        .filter((n) => /^\d+$/.test(n))
        .filter((n) => {
          try {
            const cmd = readFileSync(`/proc/${n}/cmdline`, "utf8");
            return cmd.includes("qemu-system") && cmd.includes(join(work, "remote", "tmp"));
          } catch {
            return false;
          }
        })
        .map(Number);
    expect(ours()).toHaveLength(1);
    process.kill(agentPid, "SIGKILL");
    await cluster.close();
    cluster = undefined;
    const [qemuPid] = ours();
    expect(qemuPid).toBeDefined();

    const st = state;
    const removed = await testbedDown(st.runDir);
    state = undefined;
    expect(removed).toContain(`pid ${qemuPid} (qemu on r1)`);
    expect(ours()).toEqual([]);
    expect(removed.some((r) => r.includes(join(work, "remote")))).toBe(true);
    expect(await testbedLeftovers(st)).toEqual([]);
    expect(existsSync(join(work, "remote"))).toBe(false);
    expect(existsSync(h.shmDir)).toBe(false);
    // Other testbeds may come and go meanwhile: only names of this one count.
    const shmNew = (await readdir("/dev/shm")).filter(
      (f) => !shmBefore.has(f) && (f.startsWith(`vpc-tb-${st.id}`) || f.includes("sshvm")),
    );
    expect(shmNew).toEqual([]);
    // Our dropbear (not the testbed's) is still there: down touched nothing else of the machine.
    expect(await portOpen(hostIp, 22)).toBe(true);
  });
});
