import type { CheckpointMetrics, CheckpointRecord as ControllerRecord } from "@vpc/controller";
import { describe, expect, it } from "vitest";
import { dirtierWindow, markDirtierCommand, parseDirtierStatus, startDirtierCommand } from "./dirtier.js";
import { EvaluationError } from "./errors.js";
import type { Cell, CheckpointRecord, GuestStallRecord } from "./format.js";
import { type RunStateEvent, runSweepCell, type SweepGuest, stoppedTime, sweepRegionMiB } from "./sweep.js";
import { recordingContext } from "./test-context.js";

/** A status line in vpc-dirtier's format (values are test data). */
function statusLine(o: {
  marks: number;
  pages: number;
  tMs: number;
  gaps?: number;
  gapMs?: number;
  maxGapMs?: number;
  writeGaps?: number;
  writeGapMs?: number;
  hist?: number[];
}): string {
  const bounds = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000];
  const hist = bounds.map((b, i) => `${b}:${o.hist?.[i] ?? 0}`).join(",");
  return (
    `marks=${o.marks} pages=${o.pages} hot=${Math.floor(o.pages / 2)} cold=${Math.ceil(o.pages / 2)} ` +
    `t_ms=${o.tMs.toFixed(3)} rate=1000.0 gaps=${o.gaps ?? 0} gap_ms=${(o.gapMs ?? 0).toFixed(3)} ` +
    `max_gap_ms=${(o.maxGapMs ?? 0).toFixed(3)} write_gaps=${o.writeGaps ?? 0} ` +
    `write_gap_ms=${(o.writeGapMs ?? 0).toFixed(3)} hist_ms=${hist} region_pages=4096 hot_pages=50`
  );
}

describe("vpc-dirtier status", () => {
  it("reads every field of a status line, the histogram in the program's order", () => {
    const s = parseDirtierStatus(
      `${statusLine({ marks: 3, pages: 1000, tMs: 1000.5, gaps: 4, gapMs: 9.5, maxGapMs: 4.25, writeGaps: 1, writeGapMs: 2, hist: [2, 1, 1] })}\n`,
    );
    expect(s).toMatchObject({
      marks: 3,
      pages: 1000,
      hot: 500,
      cold: 500,
      tMs: 1000.5,
      gaps: 4,
      gapMs: 9.5,
      maxGapMs: 4.25,
      writeGaps: 1,
      writeGapMs: 2,
      regionPages: 4096,
      hotPages: 50,
    });
    expect(Object.keys(s.histogram)).toEqual(["1", "2", "5", "10", "20", "50", "100", "200", "500", "1000"]);
    expect(s.histogram).toMatchObject({ "1": 2, "2": 1, "5": 1, "10": 0 });
  });

  it("names what is missing or malformed", () => {
    const line = statusLine({ marks: 1, pages: 10, tMs: 5 });
    expect(() => parseDirtierStatus(line.replace(/ t_ms=\S+/, ""))).toThrow(/no number for t_ms/);
    expect(() => parseDirtierStatus(line.replace(/gaps=0/, "gaps=x"))).toThrow(/no number for gaps/);
    expect(() => parseDirtierStatus(line.replace(/hist_ms=\S+/, "hist_ms=1:a"))).toThrow(
      /bad hist_ms bucket 1:a/,
    );
    expect(() => parseDirtierStatus("")).toThrow(EvaluationError);
  });

  it("takes a window as the difference of two marks; the max is the later mark's", () => {
    const a = parseDirtierStatus(
      statusLine({
        marks: 1,
        pages: 100,
        tMs: 1000,
        gaps: 2,
        gapMs: 3,
        maxGapMs: 2,
        writeGaps: 0,
        hist: [2],
      }),
    );
    const b = parseDirtierStatus(
      statusLine({
        marks: 2,
        pages: 600,
        tMs: 1500,
        gaps: 5,
        gapMs: 40,
        maxGapMs: 30,
        writeGaps: 2,
        writeGapMs: 33,
        hist: [3, 0, 0, 0, 2],
      }),
    );
    expect(dirtierWindow(a, b)).toEqual({
      guestWindowMs: 500,
      pagesWritten: 500,
      gaps: 3,
      gapMs: 37,
      writeGaps: 2,
      writeGapMs: 33,
      maxGapMs: 30,
      gapHistogram: {
        "1": 1,
        "2": 0,
        "5": 0,
        "10": 0,
        "20": 2,
        "50": 0,
        "100": 0,
        "200": 0,
        "500": 0,
        "1000": 0,
      },
    });
    expect(() => dirtierWindow(b, a)).toThrow(/went backwards/);
  });

  it("starts the program detached with its PID printed, and marks it by that PID", () => {
    expect(startDirtierCommand({ regionMiB: 80, pagesPerSecond: 20000, hotFraction: 0.2 })).toBe(
      "vpc-dirtier -f /run/vpc-dirtier -m 80 -r 20000 -h 0.2 >/dev/null 2>/run/vpc-dirtier.err </dev/null & echo $!",
    );
    expect(() => startDirtierCommand({ regionMiB: 80, pagesPerSecond: Number.NaN, hotFraction: 0 })).toThrow(
      /pagesPerSecond/,
    );
    const mark = markDirtierCommand(123, 4);
    expect(mark).toMatch(/^kill -USR1 123 \|\|/);
    expect(mark).toContain("grep -q '^marks=4 ' /run/vpc-dirtier");
    expect(() => markDirtierCommand(0, 1)).toThrow(/bad vpc-dirtier PID/);
  });
});

describe("QEMU run-state events", () => {
  const at = (event: string, ms: number): RunStateEvent => ({
    event,
    timestamp: { seconds: Math.floor(ms / 1000), microseconds: (ms % 1000) * 1000 },
  });

  it("sums STOP → RESUME on QEMU's timestamps", () => {
    expect(stoppedTime([at("STOP", 1000), at("RESUME", 1020), at("STOP", 2500), at("RESUME", 2512)])).toEqual(
      {
        stops: 2,
        stoppedMs: 32,
      },
    );
    expect(stoppedTime([])).toEqual({ stops: 0, stoppedMs: 0 });
  });

  it("fails on events that do not pair", () => {
    expect(() => stoppedTime([at("STOP", 1), at("STOP", 2)])).toThrow(/two STOP events/);
    expect(() => stoppedTime([at("RESUME", 1)])).toThrow(/RESUME event without a STOP/);
    expect(() => stoppedTime([at("STOP", 1)])).toThrow(/still stopped/);
  });
});

const cell = (o: Partial<Cell> = {}): Cell => ({
  experiment: "sweep",
  kernel: "dirtier",
  cls: "-",
  engine: "cow",
  vms: 1,
  hosts: 1,
  intervalMs: 1000,
  memMiB: 256,
  kernelRuns: 3,
  mode: null,
  chainLength: null,
  rep: 0,
  dirtyRate: 5000,
  hotFraction: 0.5,
  ...o,
});

describe("sweep region", () => {
  it("holds an interval of cold writes with a quarter to spare plus the hot set, at least 16 MiB", () => {
    // 20000 × 0.8 cold + 20000 × 0.2 / 10 hot = 16400 pages × 1.25 = 80.1 MiB
    expect(sweepRegionMiB(cell({ dirtyRate: 20000, hotFraction: 0.2 }))).toBe(81);
    expect(sweepRegionMiB(cell({ dirtyRate: 1000, hotFraction: 0.8 }))).toBe(16);
  });

  it("refuses a region the guest cannot hold, and a cell without the sweep's fields", () => {
    expect(() => sweepRegionMiB(cell({ dirtyRate: 40000, hotFraction: 0 }))).toThrow(
      /needs a 196 MiB region, more than a 256 MiB guest can hold/,
    );
    expect(() => sweepRegionMiB(cell({ dirtyRate: undefined }))).toThrow(/needs dirtyRate > 0/);
    expect(() => sweepRegionMiB(cell({ hotFraction: 1.5 }))).toThrow(/hotFraction in 0\.\.1/);
  });
});

function metrics(epoch: number, full: boolean): CheckpointMetrics {
  return {
    ok: true,
    vmId: "eval0",
    epoch,
    engine: "cow",
    full,
    mode: "async",
    pauseMs: 20,
    trackingStallMs: 0,
    cowStallMs: 1,
    stallMs: 1,
    soloDowntimeMs: 21,
    intervalTrackingStallMs: 0,
    trackingFaults: 0,
    cowFaults: 3,
    pagesDirty: 2500,
    pagesToSave: 2500,
    pagesCopiedInPause: 0,
    pagesProtected: 2500,
    pagesCowCopied: 3,
    pagesSavedAfterResume: 2500,
    liveRounds: 0,
    pagesCopiedLive: 0,
    peakStagingBytes: 4096,
    memoryOverhead: 0.001,
    durableMs: 300,
    checkpointBytes: 10_000_000,
    deviceStateBytes: 50_000,
    steps: { stopMs: 1, agentMs: 12, deviceStateMs: 15, contMs: 1 },
    prediction: null,
    startedAt: "2000-01-01T00:00:00.000Z",
  };
}

/**
 * A guest whose dirtier answers marks from `statuses` (one line per mark, in order), and whose
 * engine takes checkpoints as `checkpoint(epoch)` says, with a STOP/RESUME pair each.
 */
function fakeGuest(
  statuses: string[],
  checkpoint: (epoch: number) => ControllerRecord = (e) => metrics(e, e === 0),
): { guest: SweepGuest; commands: string[] } {
  const commands: string[] = [];
  let t = 0;
  const events: RunStateEvent[] = [];
  const stamp = (event: string, ms: number) =>
    events.push({ event, timestamp: { seconds: Math.floor(ms / 1000), microseconds: (ms % 1000) * 1000 } });
  const guest: SweepGuest = {
    run: async (command) => {
      commands.push(command);
      if (command.startsWith("vpc-dirtier ")) return "4242\n";
      const line = statuses.shift();
      if (line === undefined) throw new Error("vpc-dirtier (PID 4242) is gone");
      return `${line}\n`;
    },
    recordRunState: () => {
      const from = events.length;
      return { stop: async () => events.slice(from) };
    },
    checkpoints: async (firstEpoch, count, onRecord) => {
      const out: ControllerRecord[] = [];
      for (let e = firstEpoch; e < firstEpoch + count; e++) {
        t += 1000;
        stamp("STOP", t);
        stamp("RESUME", t + 25);
        const r = checkpoint(e);
        onRecord(r);
        out.push(r);
      }
      return out;
    },
  };
  return { guest, commands };
}

const clock = () => {
  let now = 0;
  return {
    now: () => now,
    sleep: async (ms: number) => {
      now += ms;
    },
  };
};
const TIMING = { warmUpMs: 100, baselineMs: 2000 };

describe("sweep cell", () => {
  const marks = [
    statusLine({ marks: 1, pages: 500, tMs: 100, writeGapMs: 1 }),
    statusLine({
      marks: 2,
      pages: 10_500,
      tMs: 2100,
      gaps: 10,
      gapMs: 50,
      writeGaps: 1,
      writeGapMs: 3,
      hist: [10],
    }),
    statusLine({
      marks: 3,
      pages: 15_500,
      tMs: 3100,
      gaps: 12,
      gapMs: 60,
      writeGaps: 1,
      writeGapMs: 3,
      hist: [12],
    }),
    statusLine({
      marks: 4,
      pages: 30_500,
      tMs: 6100,
      gaps: 30,
      gapMs: 160,
      maxGapMs: 40,
      writeGaps: 4,
      writeGapMs: 63,
      hist: [25, 2, 0, 1, 2],
    }),
  ];

  it("records the baseline window, every checkpoint with its steps, and the checkpointing window", async () => {
    const { ctx, records } = recordingContext();
    const { guest, commands } = fakeGuest([...marks]);
    await runSweepCell(cell(), ctx, guest, clock(), TIMING);
    expect(commands[0]).toBe(startDirtierCommand({ regionMiB: 16, pagesPerSecond: 5000, hotFraction: 0.5 }));
    expect(commands.slice(1)).toEqual([1, 2, 3, 4].map((m) => markDirtierCommand(4242, m)));
    expect(records.map((r) => (r.type === "checkpoint" ? `checkpoint ${r.epoch}` : r.type))).toEqual([
      "guest-stall",
      "checkpoint 0",
      "checkpoint 1",
      "checkpoint 2",
      "checkpoint 3",
      "guest-stall",
    ]);
    const [baseline, window] = records.filter((r): r is GuestStallRecord => r.type === "guest-stall");
    expect(baseline).toMatchObject({
      phase: "baseline",
      checkpoints: 0,
      guestWindowMs: 2000,
      hostWindowMs: 2000,
      pagesWritten: 10_000,
      gaps: 10,
      gapMs: 50,
      writeGapMs: 2,
      stops: 0,
      stoppedMs: 0,
    });
    // The base checkpoint's STOP/RESUME (epoch 0) is outside the window.
    expect(window).toMatchObject({
      phase: "checkpointing",
      checkpoints: 3,
      guestWindowMs: 3000,
      pagesWritten: 15_000,
      gaps: 18,
      gapMs: 100,
      writeGaps: 3,
      writeGapMs: 60,
      maxGapMs: 40,
      stops: 3,
      stoppedMs: 75,
    });
    expect(window?.gapHistogram).toMatchObject({ "1": 13, "2": 2, "10": 1, "20": 2 });
    const cp = records.find((r): r is CheckpointRecord => r.type === "checkpoint" && r.epoch === 1);
    expect(cp?.steps).toEqual({ stopMs: 1, agentMs: 12, deviceStateMs: 15, contMs: 1 });
    expect(cp?.metrics).toMatchObject({ pagesSavedAfterResume: 2500, mode: "async", cowStallMs: 1 });
    expect(cp?.metrics).not.toHaveProperty("steps");
  });

  it("fails the cell when the full base checkpoint fails, keeping what it recorded", async () => {
    const { ctx, records } = recordingContext();
    const { guest } = fakeGuest([...marks], (epoch) => ({
      ok: false,
      vmId: "eval0",
      epoch,
      engine: "cow",
      stage: "protect",
      error: { name: "AgentError", code: "AGENT_ERROR", message: "EPERM" },
      startedAt: "2000-01-01T00:00:00.000Z",
    }));
    await expect(runSweepCell(cell(), ctx, guest, clock(), TIMING)).rejects.toThrow(
      /full base checkpoint failed at protect: EPERM/,
    );
    expect(records.map((r) => r.type)).toEqual(["guest-stall", "checkpoint-failure"]);
  });

  it("fails when the dirtier is gone at a mark, and before booting anything for a bad cell", async () => {
    const { ctx } = recordingContext();
    await expect(
      runSweepCell(cell(), ctx, fakeGuest(marks.slice(0, 2)).guest, clock(), TIMING),
    ).rejects.toThrow(/is gone/);
    const { guest, commands } = fakeGuest([...marks]);
    await expect(
      runSweepCell(cell({ dirtyRate: 40000, hotFraction: 0 }), ctx, guest, clock(), TIMING),
    ).rejects.toThrow(/give the sweep more memMiB/);
    expect(commands).toEqual([]);
  });
});
