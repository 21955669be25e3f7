/**
 * The parts of `vpc testbed` that need the machine (root, namespaces, a booted VM), through the
 * built bin as users run it: a fabric prefix that overlaps an address on this machine is
 * rejected with nothing made, and SIGTERM to the testbed daemon stops its VMs and agents cleanly
 * (the hosts stay; status says so; down removes everything). One 192 MiB VM, ~20-40 s under TCG.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import type { TestbedState } from "@vpc/testbed";
import { afterAll, describe, expect, it } from "vitest";

const exec = promisify(execFile);
const repo = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const bin = join(repo, "packages", "cli", "dist", "bin.js");
const work = mkdtempSync(join(tmpdir(), "vpc-tb-cfg-int-"));
const runRoot = join(work, "run");
const env: NodeJS.ProcessEnv = { ...process.env, VPC_TESTBED_DIR: runRoot };
delete env.MAKELEVEL;

async function vpc(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await exec("node", [bin, "testbed", ...args], { cwd: repo, env, timeout: 240_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code?: number; stdout?: string; stderr?: string };
    return { code: x.code ?? -1, stdout: x.stdout ?? "", stderr: x.stderr ?? "" };
  }
}

/** A 10.N.0.0/24 (N in 180..249) with no address of this machine in it. */
async function freeSlash24(): Promise<number> {
  const used = (await exec("ip", ["-o", "-4", "addr", "show"])).stdout;
  for (let n = 180; n < 250; n++) if (!used.includes(` 10.${n}.`)) return n;
  throw new Error("no free 10.N.0.0/24");
}

/** Processes whose command line names `dir` (the daemon, dropbears, agents, QEMUs of a testbed). */
function processesNaming(dir: string): string[] {
  const out: string[] = [];
  for (const pid of readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ");
      if (cmd.includes(dir)) out.push(`${pid} ${cmd.slice(0, 60)}`);
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

const config = (name: string, n: number): string => {
  const path = join(work, `${name}.json`);
  writeFileSync(
    path,
    JSON.stringify({
      name,
      fabricPrefix: `10.${n}.0.0/24`,
      dataPrefix: `192.168.${n}.0/24`,
      vm: { memMiB: 192 },
      hosts: [{ name: "s1", vms: [{ name: `${name}vm` }] }],
      fsync: false,
    }),
  );
  return path;
};

describe("vpc testbed on the machine: a taken fabric prefix, SIGTERM to the daemon", () => {
  const dummies: string[] = [];
  const configs: string[] = [];
  afterAll(async () => {
    for (const c of configs) await vpc("down", "--config", c);
    for (const d of dummies) await exec("ip", ["link", "del", d]).catch(() => undefined);
    rmSync(work, { recursive: true, force: true });
  });

  it("rejects a fabric prefix that overlaps an address here, suggesting a free one; nothing is made", async () => {
    const n = await freeSlash24();
    const dummy = `vpctd${randomBytes(3).toString("hex")}`;
    dummies.push(dummy);
    // A bridge: the kernel may have no dummy module, and a bridge is what another testbed leaves.
    await exec("ip", ["link", "add", dummy, "type", "bridge"]);
    await exec("ip", ["addr", "add", `10.${n}.0.1/24`, "dev", dummy]);
    const path = config("tbovl", n);
    const t0 = performance.now();
    const r = await vpc("up", "--config", path);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`bad config ${path} [CLUSTER_CONFIG]`);
    expect(r.stderr).toContain(
      `fabricPrefix: 10.${n}.0.0/24 overlaps addresses already on this machine: 10.${n}.0.1 on ${dummy}`,
    );
    expect(r.stderr).toMatch(
      /set fabricPrefix to a private prefix that is free here, e\.g\. "10\.\d+\.0\.0\/24"/,
    );
    expect(performance.now() - t0).toBeLessThan(30_000);
    expect(existsSync(runRoot) ? readdirSync(runRoot) : []).toEqual([]);
    expect(processesNaming(join(runRoot, "tbovl"))).toEqual([]);
  });

  it("SIGTERM to the daemon stops the VM and its agent; the host stays until down", async () => {
    const path = config("tbsig", await freeSlash24());
    configs.push(path);
    const up = await vpc("up", "--config", path);
    expect(up.code, up.stderr).toBe(0);
    const runDir = join(runRoot, "tbsig");
    const st = JSON.parse(readFileSync(join(runDir, "testbed.json"), "utf8")) as TestbedState;
    const host = st.hosts[0]!;
    const pid = Number(readFileSync(join(runDir, "daemon.pid"), "utf8"));
    const inHost = async (): Promise<number[]> =>
      (await exec("ip", ["netns", "pids", host.netns])).stdout.split("\n").filter(Boolean).map(Number);
    // dropbear, the agent and QEMU.
    expect((await inHost()).length).toBeGreaterThanOrEqual(3);

    process.kill(pid, "SIGTERM");
    const deadline = Date.now() + 60_000;
    while (existsSync(`/proc/${pid}`) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(existsSync(`/proc/${pid}`), "the daemon did not exit").toBe(false);
    const log = readFileSync(join(runDir, "daemon.log"), "utf8");
    expect(log).toContain("shutdown (SIGTERM; the hosts stay for vpc testbed down): stopping the VMs");
    expect(log).toContain("shutdown: done");
    // Only the host's dropbear is left in its namespace: no agent, no QEMU.
    const left = await inHost();
    expect(left).toEqual([host.dropbearPid]);
    expect(existsSync(join(runDir, "control.sock"))).toBe(false);

    const status = await vpc("status", "--config", path);
    expect(status.code).toBe(1);
    expect(status.stdout).toContain("the testbed daemon is not running");

    const down = await vpc("down", "--config", path);
    expect(down.code, down.stdout + down.stderr).toBe(0);
    expect(processesNaming(runDir)).toEqual([]);
    expect(existsSync(runDir)).toBe(false);
    expect(existsSync(join("/dev/shm", `vpc-tb-${st.id}`))).toBe(false);
    expect((await exec("ip", ["netns", "list"])).stdout).not.toContain(host.netns);
  });
});
