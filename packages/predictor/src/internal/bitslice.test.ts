import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { weightedAtLeast } from "./bitslice.js";

describe("weightedAtLeast", () => {
  it("matches a per-page weighted sum", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 6 }).chain((k) =>
          fc.record({
            planes: fc.array(
              fc.array(fc.integer({ min: 0, max: 0xffffffff }), { minLength: 3, maxLength: 3 }),
              {
                minLength: k,
                maxLength: k,
              },
            ),
            weights: fc.array(fc.integer({ min: 1, max: 1100 }), { minLength: k, maxLength: k }),
            threshold: fc.integer({ min: 1, max: 7000 }),
          }),
        ),
        ({ planes, weights, threshold }) => {
          const words = planes.map((p) => Uint32Array.from(p));
          const out = new Uint32Array(3);
          weightedAtLeast(words, weights, threshold, out);
          for (let page = 0; page < 96; page++) {
            let sum = 0;
            words.forEach((w, i) => {
              if ((w[page >>> 5]! >>> (page & 31)) & 1) sum += weights[i]!;
            });
            expect(((out[page >>> 5]! >>> (page & 31)) & 1) === 1).toBe(sum >= threshold);
          }
        },
      ),
    );
  });
});
