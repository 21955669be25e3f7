import { execFile, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { testbedDown, testbedLeftovers } from "../hosts.js";
import type { TestbedState } from "../state.js";

// The crash case of a qemu host: the process that ran `testbedUp` is SIGKILLed while its L1
// boots (its QEMU lives on as an orphan); `testbedDown` from another process must still remove
// the QEMU (by the PID QEMU wrote at start-up, checked against its command line), the tap and
// the directories. The child runs the built testbed package (`npm run build`).
const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../../../..");
const DIST = join(REPO, "packages/testbed/dist/index.js");
const NET = (process.pid % 200) + 20;

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8");
  } catch {
    return "";
  }
}

describe("qemu host in a testbed: crash-proof down", () => {
  it("removes the orphaned L1 QEMU, its tap and directories after a SIGKILLed up", async () => {
    const runDir = await mkdtemp(join(tmpdir(), "vpc-tbq-"));
    const up = {
      hosts: [{ name: "q1", ip: `10.234.${NET}.2`, kind: "qemu", qemu: { memMiB: 768, cpus: 1 } }],
      bridgeIp: `10.234.${NET}.1`,
      prefixLength: 24,
      runDir,
    };
    const script = `import(${JSON.stringify(DIST)}).then((m) => m.testbedUp(${JSON.stringify(up)}))`;
    const child = spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: "ignore" });
    let qemuPid = 0;
    try {
      // Kill as soon as QEMU runs: the L1 is still booting, nothing but the state file knows it.
      for (let i = 0; i < 600 && qemuPid === 0; i++) {
        await new Promise((r) => setTimeout(r, 100));
        const st = JSON.parse(await readFile(join(runDir, "testbed.json"), "utf8").catch(() => "{}")) as {
          hosts?: { qemuPidFile?: string }[];
        };
        const pidFile = st.hosts?.[0]?.qemuPidFile;
        const pid = pidFile && existsSync(pidFile) ? Number(readFileSync(pidFile, "utf8").trim()) : 0;
        if (pid > 0 && cmdline(pid).includes(runDir)) qemuPid = pid;
      }
    } finally {
      child.kill("SIGKILL");
    }
    if (child.exitCode === null && child.signalCode === null) await new Promise((r) => child.once("exit", r));
    try {
      expect(qemuPid).toBeGreaterThan(0);
      const state = JSON.parse(await readFile(join(runDir, "testbed.json"), "utf8")) as TestbedState;
      const host = state.hosts[0]!;
      expect(host.qemuPid).toBeUndefined(); // killed before the boot finished: only the pid file knows
      expect(cmdline(qemuPid)).toContain(runDir); // the orphan still runs
      await promisify(execFile)("ip", ["link", "show", host.tap!]); // and its tap exists

      const removed = await testbedDown(runDir);
      expect(removed).toContain(`pid ${qemuPid} (qemu host q1)`);
      expect(cmdline(qemuPid)).not.toContain(runDir);
      expect(await testbedLeftovers(state)).toEqual([]);
      expect(existsSync(runDir)).toBe(false);
      expect(existsSync(host.shmDir)).toBe(false);
    } finally {
      if (existsSync(join(runDir, "testbed.json"))) await testbedDown(runDir).catch(() => undefined);
    }
  }, 120_000);
});
