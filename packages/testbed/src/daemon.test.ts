import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { EpochMetrics } from "@vpc/cluster";
import { runProgress, runVerdict } from "@vpc/cluster";
import { describe, expect, it } from "vitest";
import { formatEpochLine } from "./daemon.js";

const fixture = (name: string) => readFile(join(import.meta.dirname, "../../npb/src/fixtures", name), "utf8");

describe("runProgress", () => {
  it("is not started before the iteration table, started after it, done at the marker", async () => {
    const block = await fixture("mg-S-np2.txt");
    expect(runProgress("Initialization\n", 1, 0, 30_000, undefined)).toMatchObject({
      started: false,
      done: false,
    });
    expect(runProgress("  iteration  0\n", 1, 0, 30_000, undefined)).toMatchObject({
      started: true,
      done: false,
      allPrintedAt: undefined,
    });
    expect(runProgress(`${block}\nVPC-NPB-DONE rc=0\n`, 1, 0, 30_000, undefined)).toEqual({
      started: true,
      done: true,
      finalizeHang: false,
      allPrintedAt: undefined,
    });
  });

  it("reports a finalize hang once every block is printed and the grace time passed", async () => {
    const block = await fixture("mg-S-np2.txt");
    const first = runProgress(block, 1, 1000, 30_000, undefined);
    expect(first).toMatchObject({ done: false, allPrintedAt: 1000 });
    expect(runProgress(block, 1, 31_000, 30_000, first.allPrintedAt)).toMatchObject({ done: false });
    expect(runProgress(block, 1, 31_001, 30_000, first.allPrintedAt)).toMatchObject({
      done: true,
      finalizeHang: true,
    });
    // Two runs wanted, one printed: no hang yet.
    expect(runProgress(block, 2, 99_000, 30_000, undefined)).toMatchObject({ allPrintedAt: undefined });
  });
});

describe("runVerdict", () => {
  it("verifies a complete successful run that exited 0 or hung only in finalize", async () => {
    const block = await fixture("mg-S-np2.txt");
    expect(runVerdict(`${block}\nVPC-NPB-DONE rc=0\n`, 1, false)).toMatchObject({
      verified: true,
      verificationLines: ["Verification    =               SUCCESSFUL"],
    });
    expect(runVerdict(block, 1, true).verified).toBe(true);
    expect(runVerdict(`${block}\nVPC-NPB-DONE rc=1\n`, 1, false).verified).toBe(false);
    expect(runVerdict(`${block}\nVPC-NPB-DONE rc=0\n`, 2, false).verified).toBe(false);
  });

  it("does not verify an unsuccessful block", async () => {
    const wrong = await fixture("is-W-np4-wrong-reference.txt");
    expect(runVerdict(`${wrong}\nVPC-NPB-DONE rc=0\n`, 1, false).verified).toBe(false);
  });
});

describe("formatEpochLine", () => {
  it("uses the ARCHITECTURE names", () => {
    const m: EpochMetrics = {
      epoch: 3,
      vcDowntimeMs: 12.34,
      soloDowntimeMs: { vm1: 4, vm2: 9.5 },
      pauseMs: { vm1: 3, vm2: 8 },
      pauseOffsetMs: {},
      steps: {},
      heldFrames: 2,
      loggedFrames: 5,
      channelLogFrames: 5,
      droppedFrames: 0,
      checkpointBytes: 12_500_000,
      commitMs: 350.4,
      full: false,
    };
    expect(formatEpochLine(m)).toBe(
      "epoch 3 committed (incremental): VC downtime 12.3 ms, solo VM downtime max 9.5 ms, 12.5 MB, held 2 / logged 5 frames, commit 350 ms",
    );
  });
});
