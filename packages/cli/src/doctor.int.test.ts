import { execFileSync } from "node:child_process";
import type { DoctorReport } from "@vpc/testbed";
import { describe, expect, it } from "vitest";
import { main } from "./cli.js";

// The real probes on this machine: they must run, leave nothing behind, and report every check.
describe("vpc doctor (this machine)", () => {
  it("reports every check as JSON and leaves no probe namespace or bridge", async () => {
    const out: string[] = [];
    const code = await main(["doctor", "--json"], { stdout: (t) => out.push(t), stderr: () => undefined });
    const report = JSON.parse(out.join("")) as DoctorReport;
    expect(code).toBe(report.ok ? 0 : 1);
    const byId = Object.fromEntries(report.checks.map((c) => [c.id, c]));
    expect(Object.keys(byId)).toEqual(
      expect.arrayContaining(["qemu", "uffd-wp", "netns", "bridge", "kvm", "shm"]),
    );
    for (const c of report.checks) {
      if (c.status === "missing") expect(c.fix, c.id).toBeTruthy();
    }
    expect(execFileSync("ip", ["netns", "list"], { encoding: "utf8" })).not.toMatch(
      new RegExp(`vpcdoc-${process.pid.toString(36)}`),
    );
    expect(execFileSync("ip", ["-o", "link"], { encoding: "utf8" })).not.toMatch(
      new RegExp(`vpcdb${process.pid.toString(36)}`),
    );
  });
});
