import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import type { TestbedState } from "@vpc/controller";
import { afterAll, describe, expect, it } from "vitest";

// The real command, as `make testbed up|status|down` runs it: the built bin in a child process.
const exec = promisify(execFile);
const repo = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const bin = join(repo, "packages", "cli", "dist", "bin.js");
const runRoot = mkdtempSync(join(tmpdir(), "vpc-testbed-int-"));
const env = { ...process.env, VPC_TESTBED_DIR: runRoot };

async function vpc(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await exec("node", [bin, "testbed", ...args], { cwd: repo, env, timeout: 60_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code?: number; stdout?: string; stderr?: string };
    return { code: x.code ?? -1, stdout: x.stdout ?? "", stderr: x.stderr ?? "" };
  }
}

/** Everything of `st` still on the machine, looked for independently of the code under test. */
async function leftovers(st: TestbedState): Promise<string[]> {
  const left: string[] = [];
  const netns = (await exec("ip", ["netns", "list"])).stdout;
  const links = (await exec("ip", ["-o", "link"])).stdout;
  for (const h of st.hosts) {
    if (netns.includes(h.netns)) left.push(`netns ${h.netns}`);
    if (links.includes(`${h.veth}@`) || links.includes(`${h.veth}:`)) left.push(`link ${h.veth}`);
    if (h.dropbearPid !== undefined && existsSync(`/proc/${h.dropbearPid}`)) {
      const cmd = readFileSync(`/proc/${h.dropbearPid}/cmdline`, "utf8");
      if (cmd.includes(st.runDir)) left.push(`pid ${h.dropbearPid}`);
    }
  }
  if (links.includes(`${st.bridge}:`)) left.push(`link ${st.bridge}`);
  for (const pid of readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(st.runDir)) left.push(`pid ${pid}`);
    } catch {
      // exited meanwhile
    }
  }
  if (existsSync(join("/dev/shm", `vpc-tb-${st.id}`))) left.push(`/dev/shm/vpc-tb-${st.id}`);
  if (existsSync(st.runDir)) left.push(st.runDir);
  return left;
}

const readState = (name: string): TestbedState =>
  JSON.parse(readFileSync(join(runRoot, name, "testbed.json"), "utf8")) as TestbedState;

describe("vpc testbed (real namespaces, dropbear)", () => {
  const children: ChildProcess[] = [];
  afterAll(async () => {
    for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
    // Whatever a failed assertion left: down by the recorded state of each config.
    for (const config of ["testbed/default.json", "testbed/ci.json"]) await vpc("down", "--config", config);
    rmSync(runRoot, { recursive: true, force: true });
  });

  it("up → up again → status → down on the default config leaves nothing behind", async () => {
    const first = await vpc("up");
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/^h1\s+vpc-\w+-h1\s+10\.77\.0\.2\s+root@10\.77\.0\.2:22\s+ok$/m);
    expect(first.stdout).toMatch(/^vm4\s+h2\s+192\.168\.77\.14\/24\s+not booted$/m);
    expect(first.stdout).toContain("vpc cluster demo");
    const st = readState("demo");
    expect(st.ready).toBe(true);

    const second = await vpc("up");
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toContain("already up: nothing to do");
    expect(readState("demo").id).toBe(st.id);

    const status = await vpc("status", "--json");
    expect(status.code, status.stderr).toBe(0);
    const s = JSON.parse(status.stdout) as { state: string; hosts: { name: string; problems: string[] }[] };
    expect(s.state).toBe("up");
    expect(s.hosts.map((h) => [h.name, h.problems])).toEqual([
      ["h1", []],
      ["h2", []],
    ]);

    const down = await vpc("down");
    expect(down.code, down.stderr).toBe(0);
    expect(down.stdout).toContain(`removed netns ${st.hosts[0]!.netns}`);
    expect(down.stdout).toContain("testbed demo: down");
    expect(await leftovers(st)).toEqual([]);

    const again = await vpc("down");
    expect(again).toMatchObject({ code: 0, stdout: "testbed demo: down (nothing was up)\n" });
    expect((await vpc("status")).stdout).toContain("testbed demo: down");
  });

  it("status exits 1 naming what broke; down after a SIGKILLed up still removes everything", async () => {
    const cfg = ["--config", "testbed/ci.json"];
    expect((await vpc("up", ...cfg)).code).toBe(0);
    const st = readState("ci");
    // A host's namespace deleted by hand (its dropbear keeps running outside any name).
    await exec("ip", ["netns", "del", st.hosts[1]!.netns]);
    const broken = await vpc("status", ...cfg);
    expect(broken.code).toBe(1);
    expect(broken.stdout).toContain(`c2: namespace ${st.hosts[1]!.netns} is missing`);
    expect((await vpc("down", ...cfg)).code).toBe(0);
    expect(await leftovers(st)).toEqual([]);

    // The controller killed while it creates the hosts.
    const child = spawn("node", [bin, "testbed", "up", ...cfg], { cwd: repo, env, stdio: "ignore" });
    children.push(child);
    const statePath = join(runRoot, "ci", "testbed.json");
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      const made = existsSync(statePath) ? readState("ci") : undefined;
      if (made && made.hosts.length > 0) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    child.kill("SIGKILL");
    await new Promise((r) => child.once("exit", r));
    const half = readState("ci");
    const down = await vpc("down", ...cfg);
    expect(down.code, down.stderr).toBe(0);
    expect(await leftovers(half)).toEqual([]);
  });
});
