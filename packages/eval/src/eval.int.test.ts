// The smallest real cells end to end (issue 11): NPB CG class S on one TCG VM without checkpoints
// and under two engines, a few 1 s checkpoints each; the same kernel as a one-VM virtual cluster
// on a netns host under stop-copy (global epochs); a restore from a 2-epoch chain with NPB
// verified after it, of one VM and of a 2-VM cluster on 2 netns hosts; then `vpc report`. Needs root and the guest image with NPB
// (`make images`). VPC_EVAL_INT_KERNEL / _RUNS tune it.
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { realExecutor } from "./executors.js";
import { presetConfig } from "./experiments.js";
import { gitFacts, machineFacts } from "./machine.js";
import { writeReport } from "./report.js";
import { readResults } from "./results-dir.js";
import { runExperiments } from "./runner.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "vpc-eval-int-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

it("runs CG.S solo, as a cluster and across a restore, and reports it", { timeout: 900_000 }, async () => {
  const kernel = process.env.VPC_EVAL_INT_KERNEL ?? "cg";
  const runs = Number(process.env.VPC_EVAL_INT_RUNS ?? "8");
  const lines: string[] = [];
  const s = await runExperiments({
    experiments: [
      {
        ...presetConfig("solo", "quick"),
        kernels: [kernel],
        engines: ["none", "stop-copy", "vpc"],
        kernelRuns: runs,
      },
      {
        ...presetConfig("vc-scale", "quick"),
        kernels: [kernel],
        engines: ["stop-copy"],
        vms: [1],
        hosts: [1],
      },
      {
        ...presetConfig("restore", "quick"),
        kernels: [kernel],
        // One VM, and 2 VMs on 2 netns hosts: a VC restore (~15 s more).
        vms: [1, 2],
        hosts: [2],
        memMiB: [256],
        chainLengths: [2],
      },
    ],
    preset: "custom",
    dir: join(dir, "results"),
    resume: false,
    executor: realExecutor,
    machine: () => machineFacts(),
    git: await gitFacts(),
    argv: ["eval", "solo"],
    progress: (l) => lines.push(l),
  });
  const results = await readResults(join(dir, "results"));
  const failures = results.cells
    .filter((c) => c.status.state === "failed")
    .map((c) => `${c.id}: ${c.status.error?.message}`);
  expect(failures).toEqual([]);
  expect(s.done).toBe(6);
  expect(lines.filter((l) => /left behind/.test(l))).toEqual([]);
  for (const c of results.cells.filter((c) => c.status.cell.experiment === "solo")) {
    const run = c.records.find((r) => r.type === "run");
    expect(run, c.id).toMatchObject({ kernelRuns: runs, verifiedRuns: runs });
    if (c.status.cell.engine !== "none") {
      const cps = c.records.filter((r) => r.type === "checkpoint");
      expect(cps.length, `${c.id} checkpoints`).toBeGreaterThanOrEqual(2);
      expect(cps.every((r) => r.type === "checkpoint" && r.soloDowntimeMs >= r.pauseMs)).toBe(true);
    }
  }
  const vc = results.cells.find((c) => c.status.cell.experiment === "vc-scale")!;
  const epochs = vc.records.filter((r) => r.type === "vc-checkpoint");
  expect(epochs[0]).toMatchObject({ epoch: 0, full: true, committed: true, vms: 1, hosts: 1 });
  expect(epochs.length).toBeGreaterThanOrEqual(2);
  expect(vc.records.find((r) => r.type === "run")).toMatchObject({ kernelRuns: 2, verifiedRuns: 2 });
  const restores = results.cells.filter((c) => c.status.cell.experiment === "restore");
  const restoreOf = (vms: number) =>
    restores.find((c) => c.status.cell.vms === vms)?.records.find((r) => r.type === "restore");
  expect(restoreOf(1)).toMatchObject({ chainLength: 2, vms: 1, verified: true });
  const vcRestore = restoreOf(2);
  expect(vcRestore).toMatchObject({ chainLength: 2, vms: 2, hosts: 2, verified: true, epoch: 1 });
  expect(vcRestore?.type === "restore" && vcRestore.perVm?.map((v) => v.vmId)).toEqual(["evm1", "evm2"]);
  const report = await writeReport(join(dir, "results"));
  const md = await readFile(report.markdownPath, "utf8");
  expect(md).toMatch(/\| CG\.S \| vpc \| \d+ \| \d+\.\d\d \|/i);
  expect(report.charts.map((c) => c.id)).toContain("solo-downtime");
  const claim = report.analysis.claims.find((c) => c.claim === "solo VM downtime ≤ 0.30 × stop-copy");
  expect(claim?.status).not.toBe("not measured");
});
