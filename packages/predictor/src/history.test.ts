import { PageSet } from "@vpc/pageset";
import { describe, expect, it } from "vitest";
import { earlyPages, PageHistory } from "./history.js";

const N = 100;
const set = (...pages: number[]) => PageSet.fromPages(N, pages);

describe("PageHistory", () => {
  it("keeps the last depth intervals, age 0 most recent, and copies each dirty set", () => {
    const h = new PageHistory(N, 3);
    const d1 = set(1);
    for (const p of [1, 2, 3, 4]) h.push({ dirty: p === 1 ? d1 : set(p), order: { kind: "none" } });
    d1.add(50);
    expect(h.length).toBe(3);
    expect([0, 1, 2].map((age) => [...h.dirty(age)])).toEqual([[4], [3], [2]]);
    expect(() => h.dirty(3)).toThrow(expect.objectContaining({ code: "INVALID_ARGUMENT" }));
    expect(() => h.push({ dirty: new PageSet(N + 1), order: { kind: "none" } })).toThrow(
      expect.objectContaining({ code: "PAGE_COUNT_MISMATCH" }),
    );
    expect(h.recentWords(5).length).toBe(3);
  });

  it("takes early pages from an exact order by fraction or time window", () => {
    const obs = {
      dirty: set(5, 6, 7, 8),
      order: {
        kind: "exact" as const,
        pages: new Uint32Array([7, 5, 8, 6]),
        offsetsNs: new Float64Array([0, 10, 10, 50]),
      },
    };
    expect([...earlyPages(N, obs, { fraction: 0.5 })]).toEqual([5, 7]);
    expect([...earlyPages(N, obs, { fraction: 0.3 })]).toEqual([5, 7]);
    expect([...earlyPages(N, obs, { windowNs: 10 })]).toEqual([5, 7, 8]);
    expect([...earlyPages(N, obs, { windowNs: 9 })]).toEqual([7]);
    expect(earlyPages(N, { dirty: obs.dirty, order: { kind: "none" } }, { fraction: 1 }).isEmpty()).toBe(
      true,
    );
  });

  it("takes early pages from classes: the largest class that fits", () => {
    const dirty = set(1, 2, 3, 4);
    const obs = {
      dirty,
      order: {
        kind: "classes" as const,
        classes: [
          { thresholdNs: 10, pages: set(1) },
          { thresholdNs: 100, pages: set(1, 2, 3) },
          { thresholdNs: 1000, pages: dirty },
        ],
      },
    };
    expect([...earlyPages(N, obs, { windowNs: 500 })]).toEqual([1, 2, 3]);
    expect([...earlyPages(N, obs, { windowNs: 5 })]).toEqual([]);
    expect([...earlyPages(N, obs, { fraction: 0.5 })]).toEqual([1]);
    const h = new PageHistory(N, 2);
    h.push(obs);
    expect(h.early(0, { windowNs: 100 })).toBe(h.early(0, { windowNs: 100 }));
  });
});
