import { describe, expect, it } from "vitest";
import { countVerified, restoreVerdict, restoreWorkloadCommand } from "./guest-workload.js";

const block = (verdict: string) => ` IS Benchmark Completed.\n Verification    =               ${verdict}\n`;
const DONE = "VPC-EVAL-RESTORE-DONE\n";

describe("restore verification", () => {
  it("runs the kernel detached until the stop file, output in guest RAM", () => {
    const cmd = restoreWorkloadCommand({ kernel: "is", cls: "S" });
    expect(cmd).toMatch(
      /setsid sh -c 'while \[ ! -e \/root\/vpc-eval-stop \]; do mpiexec -n 1 \/opt\/npb\/bin\/is S/,
    );
    expect(cmd).toMatch(/>\/root\/vpc-eval-restore\.out 2>&1 <\/dev\/null &$/);
    expect(() => restoreWorkloadCommand({ kernel: "is; rm -rf /", cls: "S" })).toThrow(/bad NPB kernel/);
  });

  it("is verified only when a run completed after the restore, every result SUCCESSFUL, and the loop stopped", () => {
    const before = `${block("SUCCESSFUL")} iteration 3\n`;
    const after = `${before}${block("SUCCESSFUL")}${block("SUCCESSFUL")}${DONE}`;
    expect(restoreVerdict(before, after)).toMatchObject({ verified: true, verifiedRuns: 3 });
    // Nothing ran after the restore: proves nothing.
    expect(restoreVerdict(before, `${before}${DONE}`).verified).toBe(false);
    // A run after the restore failed its verification.
    const bad = restoreVerdict(before, `${before}${block("UNSUCCESSFUL")}${DONE}`);
    expect(bad).toMatchObject({ verified: false, verifiedRuns: 1 });
    expect(bad.detail).toMatch(/1 of 2 results SUCCESSFUL, 1 completed after the restore/);
    // The loop never stopped (stuck workload).
    expect(restoreVerdict(before, `${before}${block("SUCCESSFUL")}`).detail).toMatch(/did not stop/);
  });

  it("counts SUCCESSFUL verification lines", () => {
    expect(countVerified(`${block("SUCCESSFUL")}${block("UNSUCCESSFUL")}${block("SUCCESSFUL")}`)).toBe(2);
  });
});
