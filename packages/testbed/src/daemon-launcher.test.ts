import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { ConfigHostsStatus } from "./config-hosts.js";
import type { DaemonStatus } from "./control-socket.js";
import { liveDaemonPid, reportProblems, tailLines } from "./daemon-launcher.js";

const hosts: ConfigHostsStatus = {
  config: "demo",
  runDir: "/run/vpc-testbed/demo",
  state: "up",
  hosts: [],
  vms: [],
  problems: [],
};
const daemon: DaemonStatus = {
  pid: 10,
  phase: "ready",
  startedAt: "t",
  vms: [
    { name: "vm1", host: "h1", dataIp: "192.168.77.11/24", state: "running" },
    { name: "vm2", host: "h1", dataIp: "192.168.77.12/24", state: "running" },
  ],
  committedEpochs: [],
  progress: [],
};

describe("reportProblems", () => {
  it("finds nothing wrong with healthy hosts and running VMs", () => {
    expect(reportProblems(hosts, daemon)).toEqual({ infrastructure: [], vms: [] });
  });

  it("separates broken infrastructure (up repairs it) from VM states (restore fixes them)", () => {
    const broken = { ...hosts, problems: ["h2: namespace vpc-ab12-h2 is missing"] };
    expect(reportProblems(broken, { error: "the testbed daemon is not running" })).toEqual({
      infrastructure: ["h2: namespace vpc-ab12-h2 is missing", "the testbed daemon is not running"],
      vms: [],
    });
    expect(reportProblems(hosts, { ...daemon, phase: "stopping" }).infrastructure).toEqual([
      "the testbed daemon is stopping",
    ]);
    // Hosts still being made are not broken while the daemon starts.
    expect(reportProblems(broken, { ...daemon, phase: "starting" })).toEqual({
      infrastructure: ["the testbed daemon is starting (the hosts and VMs come up)"],
      vms: [],
    });
    const vms = reportProblems(hosts, {
      ...daemon,
      vms: [
        { ...daemon.vms[0]!, state: "killed" },
        { ...daemon.vms[1]!, state: "not answering", problem: "ssh timeout" },
      ],
    });
    expect(vms).toEqual({
      infrastructure: [],
      vms: ["vm1: killed — vpc testbed restore brings it back", "vm2: not answering (ssh timeout)"],
    });
  });
});

describe("liveDaemonPid and tailLines", () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it("trusts a recorded PID only while its command line names the run directory", async () => {
    const runDir = mkdtempSync(join(tmpdir(), "vpc-svc-"));
    dirs.push(runDir);
    expect(liveDaemonPid(runDir)).toBeUndefined();
    const child = spawn(process.execPath, ["-e", "setTimeout(() => {}, 30000)", "--", "--run-dir", runDir], {
      stdio: "ignore",
    });
    try {
      await new Promise((ok) => child.once("spawn", ok));
      writeFileSync(join(runDir, "daemon.pid"), `${child.pid}\n`);
      expect(liveDaemonPid(runDir)).toBe(child.pid);
      writeFileSync(join(runDir, "daemon.pid"), `${process.pid}\n`);
      expect(liveDaemonPid(runDir)).toBeUndefined();
    } finally {
      child.kill("SIGKILL");
    }
  });

  it("returns the last lines of a file, empty for a missing one", () => {
    const dir = mkdtempSync(join(tmpdir(), "vpc-svc-"));
    dirs.push(dir);
    writeFileSync(join(dir, "log"), "a\nb\nc\n");
    expect(tailLines(join(dir, "log"), 2)).toBe("b\nc");
    expect(tailLines(join(dir, "none"), 2)).toBe("");
  });
});
