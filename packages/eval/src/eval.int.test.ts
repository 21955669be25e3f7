// The smallest real cell end to end (issue 11): NPB CG class S on one TCG VM without checkpoints
// and under two engines, a few 1 s checkpoints each, then `vpc report` on the results.
// Needs the guest image with NPB (`make images`). VPC_EVAL_INT_KERNEL / _RUNS tune it.
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

it("runs CG.S under none, stop-copy and vpc on one VM and reports it", { timeout: 900_000 }, async () => {
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
  expect(s.done).toBe(3);
  for (const c of results.cells) {
    const run = c.records.find((r) => r.type === "run");
    expect(run, c.id).toMatchObject({ kernelRuns: runs, verifiedRuns: runs });
    if (c.status.cell.engine !== "none") {
      const cps = c.records.filter((r) => r.type === "checkpoint");
      expect(cps.length, `${c.id} checkpoints`).toBeGreaterThanOrEqual(2);
      expect(cps.every((r) => r.type === "checkpoint" && r.soloDowntimeMs >= r.pauseMs)).toBe(true);
    }
  }
  const report = await writeReport(join(dir, "results"));
  const md = await readFile(report.markdownPath, "utf8");
  expect(md).toMatch(/\| CG\.S \| vpc \| \d+ \| \d+\.\d\d \|/i);
  expect(report.charts.map((c) => c.id)).toContain("solo-downtime");
  const claim = report.analysis.claims.find((c) => c.claim === "solo VM downtime ≤ 0.30 × stop-copy");
  expect(claim?.status).not.toBe("not measured");
});
