import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { runEvalCli } from "./cli.js";
import { notAvailable } from "./errors.js";
import { expandCells, presetConfig } from "./experiments.js";
import { type Cell, cellId, EXPERIMENT_NAMES, type ExperimentConfig, type MachineFacts } from "./format.js";
import { readResults } from "./results-dir.js";
import { type CellExecutor, type RunOptions, runExperiments } from "./runner.js";

const MACHINE: MachineFacts = {
  cpuModel: "test CPU",
  cores: 2,
  kernel: "6.1.0-test",
  qemuVersion: "7.2.0",
  accelerator: "tcg",
  hostname: "test",
  node: "20.0.0",
};

const config = (o: Partial<ExperimentConfig> = {}): ExperimentConfig => ({
  ...presetConfig("solo", "quick"),
  kernels: ["cg"],
  engines: ["none", "cow", "vpc"],
  ...o,
});

/** A fake executor that writes one run record and a checkpoint, and counts its calls per cell. */
function fake(calls: string[], fail: (c: Cell) => Error | undefined = () => undefined): CellExecutor {
  return async (cell, ctx) => {
    calls.push(cellId(cell));
    if (cell.engine !== "none") {
      await ctx.record({
        type: "checkpoint",
        vmId: "vm0",
        epoch: 1,
        engine: cell.engine,
        full: false,
        pauseMs: 1,
        stallMs: 0,
        soloDowntimeMs: 1,
        memoryOverhead: 0.01,
        checkpointBytes: 4096,
        durableMs: 2,
        pagesDirty: 1,
        pagesCopiedInPause: 1,
        pagesProtected: 0,
        pagesCowCopied: 0,
        cowFaults: 0,
        precision: null,
        recall: null,
        predicted: null,
        hits: null,
        written: null,
        predictionApproximate: null,
        steps: { stopMs: 0.5, contMs: 0.5 },
        metrics: null,
      });
    }
    const err = fail(cell);
    if (err) throw err;
    await ctx.record({
      type: "run",
      wallMs: 100,
      kernelRuns: 1,
      verifiedRuns: 1,
      checkpoints: 1,
      failedCheckpoints: 0,
    });
  };
}

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "vpc-eval-runner-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const options = (executor: CellExecutor, o: Partial<RunOptions> = {}): RunOptions => ({
  experiments: [config()],
  preset: "custom",
  dir: join(dir, "r"),
  resume: false,
  executor: () => executor,
  machine: async () => MACHINE,
  git: { commit: "abc", dirty: false },
  argv: ["eval", "solo"],
  ...o,
});

describe("presets", () => {
  it("has a quick and a full preset for every experiment, quick strictly smaller", () => {
    for (const name of EXPERIMENT_NAMES) {
      const quick = expandCells(presetConfig(name, "quick"));
      const full = expandCells(presetConfig(name, "full"));
      expect(quick.length, name).toBeGreaterThan(0);
      expect(full.length, name).toBeGreaterThan(quick.length);
      expect(new Set(quick.map(cellId)).size, `${name} ids unique`).toBe(quick.length);
      expect(new Set(full.map(cellId)).size, `${name} ids unique`).toBe(full.length);
    }
  });

  it("keeps quick runs small: class S, one repetition, a bounded number of cells", () => {
    // npb and sweep exist for dirty sets that matter: class W, and the sweep's grid.
    for (const name of EXPERIMENT_NAMES.filter((n) => n !== "npb" && n !== "sweep")) {
      const c = presetConfig(name, "quick");
      expect(c.classes).toEqual(["S"]);
      expect(c.repetitions).toBe(1);
      expect(expandCells(c).length, name).toBeLessThanOrEqual(16);
    }
    expect(presetConfig("npb", "quick").classes).toEqual(["W"]);
    expect(expandCells(presetConfig("npb", "quick")).length).toBeLessThanOrEqual(16);
    expect(expandCells(presetConfig("sweep", "quick")).length).toBeLessThanOrEqual(30);
  });

  it("sizes npb guests to the kernel and runs clusters under the agent engines only", () => {
    const full = expandCells(presetConfig("npb", "full"));
    expect(full.every((c) => c.cls === "A")).toBe(true);
    const mem = (kernel: string) => new Set(full.filter((c) => c.kernel === kernel).map((c) => c.memMiB));
    expect([...mem("mg")]).toEqual([1024]);
    expect([...mem("ft")]).toEqual([1024]);
    expect([...mem("cg")]).toEqual([512]);
    for (const preset of ["quick", "full"] as const) {
      const cells = expandCells(presetConfig("npb", preset));
      expect(
        cells.filter((c) => c.vms > 1 && c.engine.startsWith("qemu-")),
        preset,
      ).toEqual([]);
      expect(cells.filter((c) => c.vms === 1).map((c) => c.engine)).toContain("qemu-snapshot");
      expect(new Set(cells.filter((c) => c.vms > 1).map((c) => c.engine))).toEqual(
        new Set(["none", "stop-copy", "cow", "vpc", "precopy"]),
      );
    }
  });

  it("sweeps page rates × hot fractions under every agent engine and qemu-snapshot", () => {
    const cells = expandCells(presetConfig("sweep", "quick"));
    expect(new Set(cells.map((c) => c.engine))).toEqual(
      new Set(["stop-copy", "cow", "vpc", "precopy", "qemu-snapshot"]),
    );
    expect(new Set(cells.map((c) => `${c.dirtyRate}/${c.hotFraction}`))).toEqual(
      new Set(["1000/0.2", "1000/0.8", "5000/0.2", "5000/0.8", "20000/0.2", "20000/0.8"]),
    );
    const id = cellId(
      cells.find((c) => c.engine === "vpc" && c.dirtyRate === 20000 && c.hotFraction === 0.2)!,
    );
    expect(id).toMatch(/^sweep\.dirtier\.vpc\.v1\.i1000\.m256\.n20000\.h0_2\.r0-[0-9a-f]{8}$/);
    // Cells of the other experiments keep the ids they had before the sweep's fields existed.
    const solo = expandCells(presetConfig("solo", "quick")).find(
      (c) => c.engine === "vpc" && c.kernel === "cg",
    )!;
    expect(solo).not.toHaveProperty("dirtyRate");
    expect(cellId({ ...solo, kernelRuns: 4 })).toBe("solo.cg-S.vpc.v1.i1000.m256.r0-8b0bde2e");
  });

  it("runs the no-checkpoint baseline once per workload, first", () => {
    const cells = expandCells(presetConfig("interval", "quick"));
    const none = cells.filter((c) => c.engine === "none");
    expect(none).toHaveLength(1);
    expect(none[0]?.intervalMs).toBe(0);
    expect(cells[0]?.engine).toBe("none");
    expect(cells.filter((c) => c.engine === "vpc").map((c) => c.intervalMs)).toEqual([500, 1000, 2000]);
  });

  it("has the solo baselines and vpc the targets compare against", () => {
    const engines = presetConfig("solo", "quick").engines;
    for (const e of ["none", "stop-copy", "cow", "vpc", "precopy", "qemu-snapshot", "qemu-stop"])
      expect(engines).toContain(e);
  });

  it("rejects an unknown experiment", () => {
    expect(() => presetConfig("nope", "quick")).toThrow(/unknown experiment "nope"/);
  });
});

describe("runExperiments", () => {
  it("runs every cell, writes run.json, records, statuses and CSV summaries", async () => {
    const calls: string[] = [];
    const lines: string[] = [];
    const s = await runExperiments(options(fake(calls), { progress: (l) => lines.push(l) }));
    expect(s).toMatchObject({ total: 3, done: 3, failed: 0, skipped: 0, interrupted: false });
    expect(calls).toEqual(expandCells(config()).map(cellId));
    const r = await readResults(join(dir, "r"));
    expect(r.run.machine).toEqual(MACHINE);
    expect(r.run.gitCommit).toBe("abc");
    expect(r.run.endedAt).not.toBeNull();
    expect(r.cells.map((c) => c.status.state)).toEqual(["done", "done", "done"]);
    expect(lines.some((l) => /^\[2\/3\] solo\.cg-S\.cow\..* done in/.test(l))).toBe(true);
    const summary = await readdir(join(dir, "r", "summary"));
    expect(summary.sort()).toEqual(["cells.csv", "claims.csv", "groups.csv", "records.csv", "steps.csv"]);
    const groups = await readFile(join(dir, "r", "summary", "groups.csv"), "utf8");
    expect(groups.split("\r\n").filter(Boolean)).toHaveLength(4);
  });

  it("records a failing cell as failed with its error and goes on", async () => {
    const calls: string[] = [];
    const exec = fake(calls, (c) => (c.engine === "cow" ? notAvailable("a thing") : undefined));
    const s = await runExperiments(options(exec));
    expect(s).toMatchObject({ done: 2, failed: 1 });
    const r = await readResults(join(dir, "r"));
    const failed = r.cells.find((c) => c.status.state === "failed");
    expect(failed?.status.cell.engine).toBe("cow");
    expect(failed?.status.error).toEqual({
      name: "EvaluationError",
      code: "NOT_AVAILABLE",
      message: "not available yet: needs a thing",
    });
    // the record written before the failure is kept, and counted
    expect(failed?.records.map((x) => x.type)).toEqual(["checkpoint"]);
  });

  it("resumes: done cells are skipped, failed ones run again, sessions are appended", async () => {
    const first: string[] = [];
    await runExperiments(options(fake(first, (c) => (c.engine === "vpc" ? new Error("boom") : undefined))));
    const second: string[] = [];
    const s = await runExperiments(
      options(fake(second), { resume: true, experiments: [], argv: ["eval", "--resume", join(dir, "r")] }),
    );
    expect(s).toMatchObject({ total: 3, skipped: 2, done: 1, failed: 0 });
    expect(second).toEqual(first.filter((id) => id.includes(".vpc.")));
    const r = await readResults(join(dir, "r"));
    expect(r.cells.every((c) => c.status.state === "done")).toBe(true);
    expect(r.cells.find((c) => c.status.cell.engine === "vpc")?.status.attempt).toBe(2);
    expect(r.run.sessions.map((x) => x.argv[1])).toEqual(["solo", "--resume"]);
  });

  it("stops on abort without marking the running cell, and a resume runs it", async () => {
    const ac = new AbortController();
    const calls: string[] = [];
    const exec: CellExecutor = async (cell, ctx) => {
      calls.push(cellId(cell));
      if (cell.engine === "cow") {
        ac.abort();
        throw new Error("killed by the interrupt");
      }
      await ctx.record({
        type: "run",
        wallMs: 1,
        kernelRuns: 1,
        verifiedRuns: 1,
        checkpoints: 0,
        failedCheckpoints: 0,
      });
    };
    const s = await runExperiments(options(exec, { signal: ac.signal }));
    expect(s).toMatchObject({ done: 1, failed: 0, interrupted: true });
    const r = await readResults(join(dir, "r"));
    expect(r.cells).toHaveLength(1);
    expect(r.run.endedAt).toBeNull();
    const again: string[] = [];
    await runExperiments(options(fake(again), { resume: true }));
    expect(again).toEqual(calls.slice(1).concat(expandCells(config()).map(cellId).slice(2)));
  });

  it("refuses to overwrite results and to resume what does not exist", async () => {
    await runExperiments(options(fake([])));
    await expect(runExperiments(options(fake([])))).rejects.toMatchObject({ code: "CONFIG" });
    await expect(
      runExperiments(options(fake([]), { dir: join(dir, "nothing"), resume: true })),
    ).rejects.toMatchObject({
      code: "RESULTS_MISSING",
    });
  });

  it("fails a cell whose executor hands in an invalid record", async () => {
    const exec: CellExecutor = async (_c, ctx) => {
      await ctx.record({ type: "run", wallMs: Number.NaN } as never);
    };
    const s = await runExperiments(options(exec, { experiments: [config({ engines: ["none"] })] }));
    expect(s.failed).toBe(1);
    const r = await readResults(join(dir, "r"));
    expect(r.cells[0]?.status.error?.message).toMatch(/wallMs/);
  });
});

describe("vpc eval", () => {
  const io = () => {
    const out: string[] = [];
    const err: string[] = [];
    return { out, err, io: { stdout: (t: string) => out.push(t), stderr: (t: string) => err.push(t) } };
  };

  it("runs the quick preset with an injected executor and exits 1 when a cell failed", async () => {
    const calls: string[] = [];
    const t = io();
    const exec = fake(calls, (c) => (c.engine === "qemu-stop" ? new Error("x") : undefined));
    const code = await runEvalCli(["solo", "--quick", "--out", join(dir, "q")], t.io, {
      executor: () => exec,
    });
    expect(code).toBe(1);
    expect(calls).toHaveLength(expandCells(presetConfig("solo", "quick")).length);
    expect(t.out.join("")).toContain(`next: vpc report ${join(dir, "q")}`);
    const t2 = io();
    expect(await runEvalCli(["--resume", join(dir, "q")], t2.io, { executor: () => fake([]) })).toBe(0);
  });

  it("--json keeps stdout for one JSON summary and sends progress to stderr", async () => {
    const t = io();
    const code = await runEvalCli(["interval", "--quick", "--out", join(dir, "j"), "--json"], t.io, {
      executor: () => fake([]),
    });
    expect(code).toBe(0);
    const summary = JSON.parse(t.out.join(""));
    const cells = expandCells(presetConfig("interval", "quick")).length;
    expect(summary).toMatchObject({
      dir: join(dir, "j"),
      total: cells,
      done: cells,
      failed: 0,
      interrupted: false,
    });
    expect(summary.next).toBe(`vpc report ${join(dir, "j")}`);
    expect(t.err.join("")).toContain("running");
  });

  it("names an unknown option in vpc's words", async () => {
    const t = io();
    expect(await runEvalCli(["solo", "--bogus"], t.io, { executor: () => fake([]) })).toBe(2);
    expect(t.err.join("")).toMatch(/^vpc eval: unknown option --bogus\n/);
  });

  it("rejects bad usage with exit 2", async () => {
    for (const args of [[], ["solo", "--quick", "--full"], ["nope"], ["solo", "--resume", "x"]]) {
      const t = io();
      expect(await runEvalCli(args, t.io, { executor: () => fake([]) }), args.join(" ")).toBe(2);
      expect(t.err.join("")).toContain("Usage: vpc eval");
    }
  });
});
