import { PageSet } from "@vpc/pageset";
import { describe, expect, it } from "vitest";
import { evaluateTrace } from "./evaluate.js";
import { earlyPages, PageHistory } from "./history.js";
import { DEFAULT_STRATEGY_SPECS, parseStrategy } from "./registry.js";
import type { Strategy } from "./strategy.js";
import { generateTrace, type SyntheticTrace } from "./synthetic.js";

const N = 100;
const set = (...pages: number[]) => PageSet.fromPages(N, pages);

function historyOf(...dirty: PageSet[]): PageHistory {
  // Arguments oldest first.
  const h = new PageHistory(N, 8);
  for (const d of dirty) h.push({ dirty: d, order: { kind: "none" } });
  return h;
}

/** Per-checkpoint precision and recall of one strategy (W = D ∩ next interval's early writes). */
function perCheckpoint(trace: SyntheticTrace, s: Strategy, windowNs?: number) {
  const n = trace.header.pageCount;
  const h = new PageHistory(n, s.depth);
  const out: { precision: number; recall: number }[] = [];
  trace.records.forEach((r, i) => {
    if (i > 0) {
      const d = h.dirty(0);
      const w = (windowNs === undefined ? r.dirty : earlyPages(n, r, { windowNs })).and(d);
      const p = s.predict(h).andInPlace(d);
      const hits = p.intersectionCount(w);
      out.push({
        precision: p.count() === 0 ? 1 : hits / p.count(),
        recall: w.count() === 0 ? 1 : hits / w.count(),
      });
    }
    h.push(r);
  });
  return out;
}

describe("strategies on hand-made histories", () => {
  it("last predicts exactly the last dirty set", () => {
    expect([...parseStrategy("last").predict(historyOf(set(1, 2), set(3)))]).toEqual([3]);
  });

  it("k-of-n counts the last n intervals only", () => {
    // page 1 in 3 old intervals outside the window, page 2 in 2 of the last 3, page 3 once.
    const h = historyOf(set(1), set(1), set(1, 2), set(2, 3), set(2));
    expect([...parseStrategy("k-of-n:k=2,n=3").predict(h)]).toEqual([2]);
    expect([...parseStrategy("k-of-n:k=1,n=3").predict(h)]).toEqual([1, 2, 3]);
    expect([...parseStrategy("k-of-n:k=3,n=5").predict(h)]).toEqual([1, 2]);
  });

  it("recency weighs recent intervals more", () => {
    // decay 0.5, threshold 1.5: needs the last two intervals, or the last plus enough older ones.
    const h = historyOf(set(4), set(3, 4), set(2, 3, 4), set(1, 2, 4), set(1, 3, 4));
    // page 1: 1 + 0.5 = 1.5 ✓; page 3: 1 + 0.25 + 0.125 = 1.375 ✗; page 2: 0.5 + 0.25 ✗; page 4: all ✓.
    expect([...parseStrategy("recency:decay=0.5,threshold=1.5,n=8").predict(h)]).toEqual([1, 4]);
    expect([...parseStrategy("recency:decay=0.5,threshold=1.375,n=8").predict(h)]).toEqual([1, 3, 4]);
  });

  it("early-writers uses the first part of each interval's order", () => {
    const h = new PageHistory(N, 4);
    const exact = (pages: number[]) => ({
      dirty: PageSet.fromPages(N, pages),
      order: {
        kind: "exact" as const,
        pages: Uint32Array.from(pages),
        offsetsNs: Float64Array.from(pages, (_, i) => i * 1e6),
      },
    });
    h.push(exact([9, 8, 7, 6]));
    h.push(exact([1, 2, 3, 4]));
    expect([...parseStrategy("early-writers:fraction=0.5,m=1").predict(h)]).toEqual([1, 2]);
    expect([...parseStrategy("early-writers:fraction=0.5,m=2").predict(h)]).toEqual([1, 2, 8, 9]);
    expect([...parseStrategy("early-writers:windowMs=0,m=2").predict(h)]).toEqual([1, 9]);
    expect([...parseStrategy("early-writers:windowMs=3,m=2,minHits=2").predict(h)]).toEqual([]);
  });

  it("rank tiers are disjoint, ordered by confidence, and cover exactly predict()", () => {
    const trace = generateTrace({ workload: "phases", pageCount: 4096, intervals: 12, seed: 3 });
    for (const spec of [...DEFAULT_STRATEGY_SPECS, "k-of-n:k=1,n=6", "recency:n=4,threshold=0.5"]) {
      const s = parseStrategy(spec);
      const h = new PageHistory(4096, s.depth);
      for (const r of trace.records) {
        h.push(r);
        const tiers = s.rank(h);
        const union = new PageSet(4096);
        let total = 0;
        tiers.forEach((t, i) => {
          if (i > 0) expect(t.confidence).toBeLessThanOrEqual(tiers[i - 1]!.confidence);
          total += t.pages.count();
          union.orInPlace(t.pages);
        });
        expect(union.count()).toBe(total);
        expect(union.equals(s.predict(h))).toBe(true);
      }
    }
  });

  it("cost-aware keeps P inside D, under the budget, and drops tiers below break-even", () => {
    const h = historyOf(set(1, 2, 3), set(1, 2), set(1, 5), set(1, 2, 3, 4));
    // k-of-n:k=1,n=4 tiers: {1} 4/4, {2} 3/4, {3} 2/4, {4,5} 1/4.
    expect([...parseStrategy("cost-aware(k-of-n:k=1,n=4):copyUs=1,faultUs=100").predict(h)]).toEqual([
      1, 2, 3, 4,
    ]);
    expect([...parseStrategy("cost-aware(k-of-n:k=1,n=4):copyUs=1,faultUs=2").predict(h)]).toEqual([1, 2, 3]);
    expect([...parseStrategy("cost-aware(k-of-n:k=1,n=4):copyUs=1,faultUs=1.2").predict(h)]).toEqual([1]);
    expect([
      ...parseStrategy("cost-aware(k-of-n:k=1,n=4):budgetUs=2,copyUs=1,faultUs=100").predict(h),
    ]).toEqual([1, 2]);
    expect([...parseStrategy("cost-aware(k-of-n:k=1,n=4):budgetUs=0").predict(h)]).toEqual([]);
  });
});

describe("strategies on synthetic workloads", () => {
  it("stable hot set: early writers reach high recall at high precision", () => {
    const trace = generateTrace({ workload: "hot-set", pageCount: 16384, intervals: 12, seed: 7 });
    // Hot pages are first written within the first 10% (100 ms) of each interval.
    const r = evaluateTrace(16384, trace.records, {
      strategies: [parseStrategy("early-writers:windowMs=100,m=3")],
      window: { kind: "early", windowNs: 100e6 },
      warmup: 3,
    });
    const ew = r.results.find((x) => x.kind === "strategy")!;
    expect(ew.precision).toBeGreaterThan(0.9);
    expect(ew.recall).toBeGreaterThan(0.9);
    // And it beats both baselines on modelled downtime.
    const cow = r.results.find((x) => x.name === "cow")!;
    expect(ew.meanDowntimeUs).toBeLessThan(cow.meanDowntimeUs);
    expect(ew.meanPredicted).toBeLessThan(r.meanDirty);
  });

  it("async traces: early writers work from timed classes too", () => {
    const trace = generateTrace({
      workload: "hot-set",
      pageCount: 16384,
      intervals: 10,
      seed: 8,
      mode: "async",
    });
    // Classes are peeks at 1%, 10%, 50% and 100% of the interval; hot pages land in the 10% one.
    const r = evaluateTrace(16384, trace.records, {
      strategies: [
        parseStrategy("early-writers:windowMs=100,m=2"),
        parseStrategy("early-writers:windowMs=10,m=2"),
      ],
      window: { kind: "early", windowNs: 100e6 },
      warmup: 2,
    });
    const [wide, narrow] = r.results.filter((x) => x.kind === "strategy");
    expect(r.windowFallbacks).toBe(0);
    expect(wide!.precision).toBeGreaterThan(0.9);
    expect(wide!.recall).toBeGreaterThan(0.9);
    // A 10 ms window only sees the 1% (10 ms) class: fewer pages, still precise, lower recall.
    expect(narrow!.recall).toBeLessThan(wide!.recall! / 2);
    expect(narrow!.precision).toBeGreaterThan(0.9);
  });

  it("random writes: no strategy reaches high precision", () => {
    const trace = generateTrace({ workload: "random", pageCount: 16384, intervals: 12, seed: 5 });
    const specs = [
      ...DEFAULT_STRATEGY_SPECS,
      "k-of-n:k=1,n=8",
      "k-of-n:k=3,n=8",
      "early-writers:windowMs=50",
    ];
    const r = evaluateTrace(16384, trace.records, { strategies: specs.map(parseStrategy) });
    for (const x of r.results.filter((x) => x.kind === "strategy")) {
      expect(x.precision ?? 0).toBeLessThan(0.3);
    }
  });

  it("phase change: last adapts at once, k-of-n recovers only after k intervals of the new phase", () => {
    const trace = generateTrace({
      workload: "phases",
      pageCount: 16384,
      intervals: 15,
      phaseLength: 5,
      seed: 11,
      noisePages: 50,
    });
    const kn = perCheckpoint(trace, parseStrategy("k-of-n:k=2,n=4"));
    const last = perCheckpoint(trace, parseStrategy("last"));
    // Checkpoint j predicts for record j+1. Record 5 starts phase 2: the checkpoint after record 5
    // (j = 5) has seen the new hot set once.
    expect(kn[5]!.recall).toBeLessThan(0.1);
    expect(kn[6]!.recall).toBeGreaterThan(0.8);
    expect(kn[3]!.recall).toBeGreaterThan(0.8);
    for (const c of last) expect(c.recall).toBe(1);
    // At the boundary (j = 4) nothing of the old phase comes back: last's precision collapses.
    expect(last[4]!.precision).toBeLessThan(0.1);
    expect(last[5]!.precision).toBeGreaterThan(0.8);
  });

  it("strided sweep: nothing written is rewritten, so every predicted page is wasted", () => {
    const trace = generateTrace({ workload: "strided", pageCount: 8192, intervals: 8 });
    const r = evaluateTrace(8192, trace.records, { strategies: DEFAULT_STRATEGY_SPECS.map(parseStrategy) });
    expect(r.meanFaultable).toBe(0);
    for (const x of r.results) expect(x.hits).toBe(0);
  });
});
