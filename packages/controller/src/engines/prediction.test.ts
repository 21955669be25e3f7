import { PageSet } from "@vpc/pageset";
import { describe, expect, it } from "vitest";
import {
  cheapestPlan,
  judgingWindowMs,
  MAX_JUDGING_WINDOW_MS,
  type PlanCosts,
  planCostsInHindsight,
  scorePrediction,
  updateCost,
  writtenDuringSave,
} from "./prediction.js";

const N = 1024;
const set = (...ranges: [number, number][]): PageSet => {
  const s = new PageSet(N);
  for (const [a, n] of ranges) s.addRange(a, n);
  return s;
};
const costs: PlanCosts = {
  copyNsPerPage: 1000,
  protectNsPerPage: 300,
  faultNs: 16_000,
  saveNsPerPage: 5000,
  harvestNs: 0,
  deviceStateNs: 0,
};

describe("vpc's plan chosen in hindsight", () => {
  it("predict wins when P names W closely", () => {
    // S = 800 pages, W = 100 of them, P = those 100 plus 20 more.
    const h = { saveSet: set([0, 800]), wouldFault: set([0, 100]), predicted: set([0, 120]) };
    const c = planCostsInHindsight(h, costs);
    expect(c.predict).toBe(120 * 1000 + 680 * 300);
    expect(c.cow).toBe(800 * 300 + 100 * 16_000);
    expect(c["copy-all"]).toBe(800 * 1000);
    expect(cheapestPlan(c)).toBe("predict");
  });

  it("copy-all wins when nearly every page of S would fault (a random writer)", () => {
    const h = { saveSet: set([0, 800]), wouldFault: set([0, 700]), predicted: set([400, 300]) };
    expect(cheapestPlan(planCostsInHindsight(h, costs))).toBe("copy-all");
  });

  it("cow wins when few pages fault and P would copy pages that do not", () => {
    // P outside W: copying it costs more than protecting it, and W is small.
    const h = { saveSet: set([0, 800]), wouldFault: set([790, 5]), predicted: set([0, 600]) };
    const c = planCostsInHindsight(h, costs);
    expect(c.cow).toBeLessThan(c.predict);
    expect(cheapestPlan(c)).toBe("cow");
  });

  it("P outside S costs nothing (only S ∩ P is copied); ties go to predict", () => {
    const h = { saveSet: set([0, 100]), wouldFault: new PageSet(N), predicted: set([500, 200]) };
    const c = planCostsInHindsight(h, costs);
    expect(c.predict).toBe(c.cow);
    expect(cheapestPlan(c)).toBe("predict");
  });

  it("agent work in the device-state save's shadow costs the pause nothing", () => {
    // S = 800, W = 30: counted alone, protecting all and taking 30 faults (240k + 480k ns) beats
    // copying all (800k ns)…
    const h = { saveSet: set([0, 800]), wouldFault: set([0, 30]), predicted: new PageSet(N) };
    const bare = planCostsInHindsight(h, costs);
    expect(bare.cow).toBeLessThan(bare["copy-all"]);
    // …but a 1 ms device-state save beside the agent hides the whole copy: copy-all costs the
    // floor only, while cow's faults come on top of it.
    const shadowed = planCostsInHindsight(h, { ...costs, harvestNs: 100_000, deviceStateNs: 1_000_000 });
    expect(shadowed["copy-all"]).toBe(1_000_000);
    expect(shadowed.cow).toBe(1_000_000 + 30 * 16_000);
    expect(cheapestPlan(shadowed)).toBe("copy-all");
  });

  it("a copy-all checkpoint is judged over the time a saver would have needed for S, capped", () => {
    expect(judgingWindowMs(0, costs)).toBe(0);
    // 24.6k pages at 5 µs each: 123 ms.
    expect(judgingWindowMs(24_600, costs)).toBe(123);
    expect(judgingWindowMs(10_000_000, costs)).toBe(MAX_JUDGING_WINDOW_MS);
  });

  it("updateCost moves a quarter of the way and ignores missing or bad measurements", () => {
    expect(updateCost(1000, 2000)).toBe(1250);
    expect(updateCost(1000, null)).toBe(1000);
    expect(updateCost(1000, Number.NaN)).toBe(1000);
    expect(updateCost(1000, 0)).toBe(1000);
  });
});

describe("scoring against W", () => {
  it("counts copied pages written during the save as hits and faults as misses", () => {
    const order = {
      pages: Uint32Array.from([1, 2, 3, 50]),
      timesNs: BigInt64Array.from([10n, 20n, 30n, 400n]),
      classes: Uint32Array.from([1, 1, 1, 2]),
    };
    const early = writtenDuringSave(N, order, true, { endNs: 100n, endClass: 0 });
    // Async: by order class, up to the end-of-save peek's class.
    expect([...writtenDuringSave(N, order, false, { endNs: 0n, endClass: 1 })]).toEqual([1, 2, 3]);
    expect([...early]).toEqual([1, 2, 3]);
    const m = scorePrediction(7, set([0, 3]), set([10, 2]), early);
    // copied {0,1,2}; hits {1,2}; W = faulted {10,11} + hits.
    expect(m).toMatchObject({ epoch: 7, predicted: 3, hits: 2, written: 4, approximate: false });
    expect(m.precision).toBeCloseTo(2 / 3);
    expect(m.recall).toBeCloseTo(0.5);
  });
});
