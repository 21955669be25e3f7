import { decodeDirtyTrace, encodeDirtyTrace } from "@vpc/pageset";
import { describe, expect, it } from "vitest";
import { generateTrace, WORKLOADS } from "./synthetic.js";

describe("generateTrace", () => {
  it("produces valid traces in both modes, deterministic for a seed", () => {
    for (const workload of WORKLOADS) {
      for (const mode of ["sync", "async"] as const) {
        const t = generateTrace({ workload, pageCount: 2048, intervals: 6, seed: 9, mode });
        // encodeDirtyTrace validates every record (order within D, classes nested, epochs rising).
        const back = decodeDirtyTrace(encodeDirtyTrace(t.header, t.records));
        expect(back.records.length).toBe(6);
        const again = generateTrace({ workload, pageCount: 2048, intervals: 6, seed: 9, mode });
        for (const [i, r] of again.records.entries()) expect(r.dirty.equals(t.records[i]!.dirty)).toBe(true);
        for (const r of t.records) {
          if (r.order.kind === "exact") expect(r.order.pages.length).toBe(r.dirty.count());
          if (r.order.kind === "classes") expect(r.order.classes.at(-1)!.pages.equals(r.dirty)).toBe(true);
        }
      }
    }
    const a = generateTrace({ workload: "random", pageCount: 2048, intervals: 1, seed: 1 });
    const b = generateTrace({ workload: "random", pageCount: 2048, intervals: 1, seed: 2 });
    expect(a.records[0]!.dirty.equals(b.records[0]!.dirty)).toBe(false);
  });

  it("writes hot pages early and noise across the interval", () => {
    const t = generateTrace({
      workload: "hot-set",
      pageCount: 4096,
      intervals: 1,
      hotPages: 100,
      noisePages: 0,
      hotProb: 1,
    });
    const o = t.records[0]!.order;
    expect(o.kind).toBe("exact");
    if (o.kind === "exact") {
      expect(o.pages.length).toBe(100);
      expect(Math.max(...o.offsetsNs)).toBeLessThanOrEqual(0.1e9);
    }
  });

  it("rejects impossible options", () => {
    expect(() => generateTrace({ workload: "random", pageCount: 10, intervals: 1 })).toThrow(
      expect.objectContaining({ code: "INVALID_ARGUMENT" }),
    );
    expect(() => generateTrace({ workload: "hot-set", pageCount: 100, intervals: 1, hotProb: 2 })).toThrow(
      expect.objectContaining({ code: "INVALID_ARGUMENT" }),
    );
  });
});
