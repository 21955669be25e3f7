import { type DirtyTraceRecord, PageSet } from "@vpc/pageset";
import { describe, expect, it } from "vitest";
import { evaluateTrace, TraceEvaluator } from "./evaluate.js";
import { parseStrategy } from "./registry.js";

const N = 64;
function rec(epoch: number, pages: number[], offsets?: number[]): DirtyTraceRecord {
  const dirty = PageSet.fromPages(N, pages);
  return {
    epoch,
    startNs: 0n,
    endNs: 1n,
    dirty,
    order:
      offsets === undefined
        ? { kind: "none" }
        : { kind: "exact", pages: Uint32Array.from(pages), offsetsNs: Float64Array.from(offsets) },
  };
}

describe("TraceEvaluator", () => {
  const records = [rec(1, [1, 2, 3, 4]), rec(2, [1, 2, 9], [0, 5, 10]), rec(3, [2, 9], [0, 1])];
  const costs = { copyUs: 2, faultUs: 10, protectUs: 1, basePauseUs: 100 };

  it("computes precision, recall and the downtime model per checkpoint", () => {
    const r = evaluateTrace(N, records, { strategies: [parseStrategy("last")], costs });
    // Checkpoint 1: D = {1,2,3,4}, W = {1,2}. Checkpoint 2: D = {1,2,9}, W = {2,9}.
    expect(r.checkpoints).toBe(2);
    expect(r.meanDirty).toBe(3.5);
    expect(r.meanFaultable).toBe(2);
    const by = Object.fromEntries(r.results.map((x) => [x.name, x]));
    expect(by.cow).toMatchObject({ predicted: 0, hits: 0, faults: 4, precision: null, recall: 0 });
    // cow pause: 100 + 4·1 and 100 + 3·1; stall 2·10 each.
    expect(by.cow!.meanPauseUs).toBe(103.5);
    expect(by.cow!.meanStallUs).toBe(20);
    expect(by["stop-copy"]).toMatchObject({ predicted: 7, hits: 4, faults: 0, precision: 4 / 7, recall: 1 });
    expect(by["stop-copy"]!.meanPauseUs).toBe(100 + 3.5 * 2);
    expect(by.oracle).toMatchObject({ predicted: 4, hits: 4, faults: 0, precision: 1, recall: 1 });
    // oracle: 100 + 2·2 + 2·1 and 100 + 2·2 + 1·1.
    expect(by.oracle!.meanDowntimeUs).toBe(105.5);
    expect(by.last).toMatchObject({ predicted: 7, precision: 4 / 7, recall: 1 });
    expect(by.last!.downtimeVsCow).toBeCloseTo(107 / 123.5);
  });

  it("uses the early window of the next interval, falling back to the whole interval without order", () => {
    const r = evaluateTrace(N, [rec(0, [1, 2, 9]), ...records], {
      strategies: [],
      window: { kind: "early", windowNs: 4 },
    });
    // Checkpoints: before record 1 (no order: fallback), before record 2 (W = {1}), before 3 (W = {2, 9}).
    expect(r.windowFallbacks).toBe(1);
    expect(r.results[0]!.faults).toBe(2 + 1 + 2);
  });

  it("caps protection at the whole-range cost when given", () => {
    const r = evaluateTrace(N, records, { strategies: [], costs: { ...costs, protectRangeUs: 2 } });
    expect(r.results[0]!.meanPauseUs).toBe(102);
  });

  it("skips warm-up checkpoints and rejects bad inputs", () => {
    const e = new TraceEvaluator(N, { strategies: [], warmup: 1 });
    for (const r of records) e.observe(r);
    expect(e.report().checkpoints).toBe(1);
    expect(() => e.observe({ ...records[0]!, dirty: new PageSet(N + 1) })).toThrow(
      expect.objectContaining({ code: "PAGE_COUNT_MISMATCH" }),
    );
    expect(() => new TraceEvaluator(N, { strategies: [], costs: { faultUs: -1 } })).toThrow(
      expect.objectContaining({ code: "INVALID_ARGUMENT" }),
    );
  });
});
