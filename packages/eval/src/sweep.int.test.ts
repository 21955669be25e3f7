// The guest's vpc-dirtier on a real TCG guest, and one real sweep cell end to end. Needs root
// and the guest image (`make images`). The probe's checks use stalls this test makes itself
// (QEMU SIGSTOPped by its PID: the guest's clock runs on; a QMP stop: QEMU stops the guest's
// clock), so they say what the probe sees, not how fast anything is.
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadGuestImage, Vm } from "@vpc/controller";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dirtierWindow, markDirtierCommand, parseDirtierStatus, startDirtierCommand } from "./dirtier.js";
import { realExecutor } from "./executors.js";
import { presetConfig } from "./experiments.js";
import type { CheckpointRecord, GuestStallRecord } from "./format.js";
import { gitFacts, machineFacts } from "./machine.js";
import { writeReport } from "./report.js";
import { readResults } from "./results-dir.js";
import { runExperiments } from "./runner.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("vpc-dirtier in a guest", () => {
  let vm: Vm | undefined;
  beforeAll(async () => {
    vm = await Vm.start({ name: "dirtier0", image: await loadGuestImage(), memMiB: 256 });
  });
  afterAll(async () => {
    await vm?.shutdown();
  });

  it("refuses bad arguments naming the option", async () => {
    const r = await vm!.exec("vpc-dirtier -h 2");
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain("-h HOT must be in 0..1");
  });

  it("writes its hot fraction exactly, marks on SIGUSR1, sees a vCPU stall but not a QMP stop", async () => {
    const v = vm!;
    const pid = Number(
      (await v.run(startDirtierCommand({ regionMiB: 16, pagesPerSecond: 2000, hotFraction: 0.25 }))).trim(),
    );
    let marks = 0;
    const mark = async () => parseDirtierStatus((await v.run(markDirtierCommand(pid, ++marks))).trim());
    await sleep(1000);
    const first = await mark();
    await sleep(1000);
    const second = await mark();
    expect(second).toMatchObject({ marks: 2, regionPages: 4096, hotPages: 50 });
    expect(second.pages).toBeGreaterThan(first.pages);
    // Every fourth write goes to the hot set (a credit of 0.25 per write), to the page.
    expect(Math.abs(second.hot - second.pages / 4)).toBeLessThanOrEqual(1);
    expect(second.hot + second.cold).toBe(second.pages);

    // QEMU stopped by signal: its vCPU does not run, the guest's clock goes on.
    process.kill(v.pid, "SIGSTOP");
    try {
      await sleep(600);
    } finally {
      process.kill(v.pid, "SIGCONT");
    }
    const afterSigstop = await mark();
    expect(dirtierWindow(second, afterSigstop).maxGapMs).toBeGreaterThanOrEqual(500);

    // A QMP stop: QEMU stops the guest's clock with the vCPU, so the guest cannot see it.
    const t0 = performance.now();
    await v.pause();
    await sleep(2000);
    await v.resume();
    const afterStop = await mark();
    const hostMs = performance.now() - t0;
    const window = dirtierWindow(afterSigstop, afterStop);
    expect(window.maxGapMs).toBeLessThan(1000);
    expect(window.guestWindowMs).toBeLessThan(hostMs - 1500);
  });
});

describe("a sweep cell", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "vpc-eval-sweep-int-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("records every checkpoint with its steps and both guest windows, and reports them", async () => {
    const out = join(dir, "results");
    const summary = await runExperiments({
      experiments: [
        {
          ...presetConfig("sweep", "quick"),
          engines: ["cow"],
          dirtyRates: [2000],
          hotFractions: [0.5],
          kernelRuns: 3,
        },
      ],
      preset: "custom",
      dir: out,
      resume: false,
      executor: realExecutor,
      machine: () => machineFacts(),
      git: await gitFacts(),
      argv: ["eval", "sweep"],
    });
    const results = await readResults(out);
    expect(results.cells.map((c) => c.status.error?.message ?? c.status.state)).toEqual(["done"]);
    expect(summary.done).toBe(1);
    const records = results.cells[0]!.records;
    const cps = records.filter((r): r is CheckpointRecord => r.type === "checkpoint");
    expect(cps.map((r) => [r.epoch, r.full])).toEqual([
      [0, true],
      [1, false],
      [2, false],
      [3, false],
    ]);
    for (const r of cps) {
      expect(Object.keys(r.steps ?? {}).length, `epoch ${r.epoch} steps`).toBeGreaterThan(0);
      expect(r.metrics).toMatchObject({ vmId: r.vmId, epoch: r.epoch, pauseMs: r.pauseMs });
    }
    const windows = records.filter((r): r is GuestStallRecord => r.type === "guest-stall");
    expect(windows.map((w) => [w.phase, w.checkpoints, w.stops])).toEqual([
      ["baseline", 0, 0],
      ["checkpointing", 3, 3],
    ]);
    const cp = windows[1]!;
    expect(cp.pagesWritten).toBeGreaterThan(0);
    expect(cp.stoppedMs).toBeGreaterThan(0);
    const report = await writeReport(out);
    const md = await readFile(report.markdownPath, "utf8");
    expect(md).toMatch(/\| 2000 \| 0\.5 \| cow \| 3 \| \d+ \|/);
    expect(report.charts.map((c) => c.id)).toEqual(
      expect.arrayContaining(["sweep-downtime", "sweep-guest-felt", "pause-steps"]),
    );
  });
});
