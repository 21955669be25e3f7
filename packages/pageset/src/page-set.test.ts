import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { PageSetError } from "./errors.js";
import { PageSet } from "./page-set.js";

/** Reference model: a plain sorted array of distinct pages. */
function model(pages: number[]): number[] {
  return [...new Set(pages)].sort((a, b) => a - b);
}

const setArb = fc.integer({ min: 0, max: 200 }).chain((pageCount) =>
  fc.record({
    pageCount: fc.constant(pageCount),
    a: pageCount === 0 ? fc.constant<number[]>([]) : fc.array(fc.integer({ min: 0, max: pageCount - 1 })),
    b: pageCount === 0 ? fc.constant<number[]>([]) : fc.array(fc.integer({ min: 0, max: pageCount - 1 })),
  }),
);

describe("PageSet", () => {
  it("places page p at bit p & 7 of byte p >>> 3 (the agent's bitmap layout)", () => {
    const s = PageSet.fromPages(64, [0, 9, 63]);
    expect([...s.toBytes()]).toEqual([0x01, 0x02, 0, 0, 0, 0, 0, 0x80]);
  });

  it("wraps aligned little-endian bytes without copying", () => {
    const buf = new Uint8Array(8);
    const s = PageSet.fromBytes(64, buf);
    s.add(9);
    expect(buf[1]).toBe(0x02);
    buf[7] = 0x80;
    expect(s.has(63)).toBe(true);
    const copied = PageSet.fromBytes(64, buf, { copy: true });
    copied.add(0);
    expect(buf[0]).toBe(0);
  });

  it("copies unaligned or short-of-a-word bytes and keeps the same pages", () => {
    const raw = new Uint8Array(9);
    raw.set([0x01, 0x02, 0x00, 0x04], 1);
    const s = PageSet.fromBytes(27, raw.subarray(1, 5));
    expect([...s]).toEqual([0, 9, 26]);
    expect([...PageSet.fromBytes(10, new Uint8Array([0xff, 0x03]))]).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it("rejects bitmaps that are too short or have bits beyond pageCount", () => {
    expect(() => PageSet.fromBytes(17, new Uint8Array(2))).toThrow(
      expect.objectContaining({ code: "BAD_BITMAP" }),
    );
    expect(() => PageSet.fromBytes(10, new Uint8Array([0, 0x04]))).toThrow(
      expect.objectContaining({ code: "BAD_BITMAP" }),
    );
    expect(() => new PageSet(40, new Uint32Array([0, 1 << 8]))).toThrow(
      expect.objectContaining({ code: "BAD_BITMAP" }),
    );
  });

  it("throws typed errors for out-of-range pages and mismatched sizes", () => {
    const s = new PageSet(10);
    let err: unknown;
    try {
      s.add(10);
    } catch (e) {
      err = e;
    }
    expect(PageSetError.isInstance(err)).toBe(true);
    expect((err as PageSetError).code).toBe("PAGE_OUT_OF_RANGE");
    expect(() => s.add(-1)).toThrow(expect.objectContaining({ code: "PAGE_OUT_OF_RANGE" }));
    expect(() => s.add(1.5)).toThrow(expect.objectContaining({ code: "PAGE_OUT_OF_RANGE" }));
    expect(() => s.or(new PageSet(11))).toThrow(expect.objectContaining({ code: "PAGE_COUNT_MISMATCH" }));
    expect(s.has(10)).toBe(false);
    expect(s.has(-1)).toBe(false);
  });

  it("fill sets exactly pageCount pages, clear empties", () => {
    for (const n of [0, 1, 31, 32, 33, 100]) {
      const s = new PageSet(n).fill();
      expect(s.count()).toBe(n);
      expect(s.toRanges()).toEqual(n === 0 ? [] : [{ start: 0, count: n }]);
      expect(s.clear().isEmpty()).toBe(true);
    }
  });

  it("addRange matches adding page by page", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 150 }).chain((n) =>
          fc.tuple(
            fc.constant(n),
            fc
              .integer({ min: 0, max: n - 1 })
              .chain((start) => fc.tuple(fc.constant(start), fc.integer({ min: 0, max: n - start }))),
          ),
        ),
        ([n, [start, count]]) => {
          const a = new PageSet(n).addRange(start, count);
          const b = new PageSet(n);
          for (let p = start; p < start + count; p++) b.add(p);
          expect(a.equals(b)).toBe(true);
        },
      ),
    );
  });

  it("agrees with a reference model on every operation", () => {
    fc.assert(
      fc.property(setArb, ({ pageCount, a, b }) => {
        const ma = model(a);
        const mb = model(b);
        const sa = PageSet.fromPages(pageCount, a);
        const sb = PageSet.fromPages(pageCount, b);
        const inB = new Set(mb);
        const inA = new Set(ma);
        expect([...sa]).toEqual(ma);
        expect([...sa.toArray()]).toEqual(ma);
        const each: number[] = [];
        sa.forEach((p) => {
          each.push(p);
        });
        expect(each).toEqual(ma);
        expect(sa.count()).toBe(ma.length);
        expect(sa.isEmpty()).toBe(ma.length === 0);
        expect([...sa.or(sb)]).toEqual(model([...ma, ...mb]));
        expect([...sa.and(sb)]).toEqual(ma.filter((p) => inB.has(p)));
        expect([...sa.andNot(sb)]).toEqual(ma.filter((p) => !inB.has(p)));
        expect([...sa.xor(sb)]).toEqual(
          model([...ma.filter((p) => !inB.has(p)), ...mb.filter((p) => !inA.has(p))]),
        );
        expect(sa.intersectionCount(sb)).toBe(ma.filter((p) => inB.has(p)).length);
        expect(sa.isSubsetOf(sb)).toBe(ma.every((p) => inB.has(p)));
        expect(sa.equals(sb)).toBe(ma.join() === mb.join());
        // Non-mutating operations left the operands alone.
        expect([...sa]).toEqual(ma);
        // Ranges: maximal, ascending, and they rebuild the same set.
        const ranges = sa.toRanges();
        expect(ranges.reduce((n, r) => n + r.count, 0)).toBe(ma.length);
        for (let i = 1; i < ranges.length; i++) {
          expect(ranges[i]!.start).toBeGreaterThan(ranges[i - 1]!.start + ranges[i - 1]!.count);
        }
        expect(PageSet.fromRanges(pageCount, ranges).equals(sa)).toBe(true);
        // Bytes round trip.
        expect(PageSet.fromBytes(pageCount, sa.toBytes()).equals(sa)).toBe(true);
        // In-place variants equal the non-mutating ones.
        expect(sa.clone().orInPlace(sb).equals(sa.or(sb))).toBe(true);
        expect(sa.clone().andInPlace(sb).equals(sa.and(sb))).toBe(true);
        expect(sa.clone().andNotInPlace(sb).equals(sa.andNot(sb))).toBe(true);
        expect(sa.clone().xorInPlace(sb).equals(sa.xor(sb))).toBe(true);
        expect(new PageSet(pageCount).copyFrom(sa).equals(sa)).toBe(true);
      }),
    );
  });

  it("delete reports whether the page was present", () => {
    const s = PageSet.fromPages(40, [3, 35]);
    expect(s.delete(35)).toBe(true);
    expect(s.delete(35)).toBe(false);
    expect([...s]).toEqual([3]);
  });

  it("finds runs that span whole words and word boundaries", () => {
    const s = new PageSet(200).addRange(30, 100).addRange(131, 1).addRange(199, 1);
    expect(s.toRanges()).toEqual([
      { start: 30, count: 100 },
      { start: 131, count: 1 },
      { start: 199, count: 1 },
    ]);
  });
});
