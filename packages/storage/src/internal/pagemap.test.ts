import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ZERO_RUN } from "./format.js";
import { buildRuns, SLOT_UNSET, SLOT_ZERO } from "./pagemap.js";

/** Expands runs back to a page → slot table, the inverse the reader relies on. */
function expand(runs: Uint32Array, pages: number): Uint32Array {
  const out = new Uint32Array(pages).fill(SLOT_UNSET);
  for (let r = 0; r < runs.length; r += 3) {
    for (let j = 0; j < runs[r + 1]!; j++)
      out[runs[r]! + j] = runs[r + 2] === ZERO_RUN ? SLOT_ZERO : runs[r + 2]! + j;
  }
  return out;
}

describe("buildRuns", () => {
  it("merges consecutive slots and zero pages into runs", () => {
    const t = Uint32Array.from([5, 6, 7, SLOT_ZERO, SLOT_ZERO, SLOT_UNSET, 0, 2, 3]);
    expect(Array.from(buildRuns(t, false))).toEqual([0, 3, 5, 3, 2, ZERO_RUN, 6, 1, 0, 7, 2, 2]);
    expect(Array.from(buildRuns(t, true))).toEqual([0, 3, 5, 6, 1, 0, 7, 2, 2]);
  });

  it("round-trips any table (zero runs dropped for full parts)", () => {
    const slot = fc.oneof(fc.constant(SLOT_UNSET), fc.constant(SLOT_ZERO), fc.integer({ min: 0, max: 40 }));
    fc.assert(
      fc.property(fc.array(slot, { maxLength: 60 }), fc.boolean(), (arr, full) => {
        const t = Uint32Array.from(arr);
        const runs = buildRuns(t, full);
        const want = full ? t.map((s) => (s === SLOT_ZERO ? SLOT_UNSET : s)) : t;
        expect(Array.from(expand(runs, t.length))).toEqual(Array.from(want));
        for (let r = 3; r < runs.length; r += 3)
          expect(runs[r]!).toBeGreaterThanOrEqual(runs[r - 3]! + runs[r - 2]!);
      }),
    );
  });
});
