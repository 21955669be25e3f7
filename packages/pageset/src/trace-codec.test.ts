import { crc32 } from "node:zlib";
import { describe, expect, it } from "vitest";
import { TraceFormatError } from "./errors.js";
import { PageSet } from "./page-set.js";
import {
  DirtyTraceDecoder,
  type DirtyTraceHeader,
  type DirtyTraceRecord,
  decodeDirtyTrace,
  encodeDirtyTrace,
  encodeTraceHeader,
  encodeTraceRecord,
} from "./trace-codec.js";

const PAGES = 300;

const syncHeader: DirtyTraceHeader = {
  pageSize: 4096,
  pageCount: PAGES,
  guestRamBytes: 4096 * PAGES,
  trackingMode: "sync",
  metadata: { workload: "unit", vm: "vm0" },
};
const asyncHeader: DirtyTraceHeader = { ...syncHeader, trackingMode: "async", metadata: {} };

function syncRecords(): DirtyTraceRecord[] {
  // Epoch 1: a few scattered pages (ranges win); epoch 2: half the pages at random (bitmap wins).
  const scattered = PageSet.fromPages(PAGES, [5, 6, 7, 100, 299]);
  const dense = new PageSet(PAGES);
  for (let p = 0; p < PAGES; p++) if ((p * 7919) % 3 !== 0) dense.add(p);
  return [
    {
      epoch: 1,
      startNs: 1_000_000n,
      endNs: 1_001_000_000n,
      dirty: scattered,
      order: {
        kind: "exact",
        pages: new Uint32Array([100, 5, 299, 6]),
        offsetsNs: new Float64Array([0, 250, 250, 1_000_000_000]),
      },
    },
    { epoch: 2, startNs: 1_001_000_000n, endNs: 2_001_000_000n, dirty: dense, order: { kind: "none" } },
    {
      epoch: 4,
      startNs: 2n ** 63n,
      endNs: 2n ** 64n - 1n,
      dirty: new PageSet(PAGES),
      order: { kind: "none" },
    },
  ];
}

function asyncRecords(): DirtyTraceRecord[] {
  const dirty = new PageSet(PAGES).addRange(0, 50).addRange(200, 10);
  const c1 = PageSet.fromPages(PAGES, [1, 2, 205]);
  const c2 = c1.or(new PageSet(PAGES).addRange(10, 20));
  return [
    {
      epoch: 7,
      startNs: 0n,
      endNs: 5n,
      dirty,
      order: {
        kind: "classes",
        classes: [
          { thresholdNs: 1_000_000, pages: c1 },
          { thresholdNs: 10_000_000, pages: c2 },
          { thresholdNs: 100_000_000, pages: dirty },
        ],
      },
    },
  ];
}

function expectSameRecords(actual: DirtyTraceRecord[], expected: DirtyTraceRecord[]): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    expect([a.epoch, a.startNs, a.endNs]).toEqual([e.epoch, e.startNs, e.endNs]);
    expect(a.dirty.equals(e.dirty)).toBe(true);
    expect(a.order.kind).toBe(e.order.kind);
    if (a.order.kind === "exact" && e.order.kind === "exact") {
      expect([...a.order.pages]).toEqual([...e.order.pages]);
      expect([...a.order.offsetsNs]).toEqual([...e.order.offsetsNs]);
    }
    if (a.order.kind === "classes" && e.order.kind === "classes") {
      expect(a.order.classes.map((c) => c.thresholdNs)).toEqual(e.order.classes.map((c) => c.thresholdNs));
      const expected = e.order.classes;
      for (let j = 0; j < expected.length; j++) {
        expect(a.order.classes[j]!.pages.equals(expected[j]!.pages)).toBe(true);
      }
    }
  }
}

function errorOf(fn: () => unknown): TraceFormatError {
  try {
    fn();
  } catch (e) {
    if (TraceFormatError.isInstance(e)) return e;
    throw e;
  }
  throw new Error("expected a TraceFormatError");
}

/** Re-seals a record's CRC after a deliberate edit, to reach the field checks behind it. */
function reseal(bytes: Uint8Array, recordStart: number, recordEnd: number): void {
  const crc = crc32(bytes.subarray(recordStart, recordEnd - 4));
  new DataView(bytes.buffer, bytes.byteOffset).setUint32(recordEnd - 4, crc, true);
}

describe("dirty-trace codec", () => {
  it("round-trips sync and async traces", () => {
    for (const [h, rs] of [
      [syncHeader, syncRecords()],
      [asyncHeader, asyncRecords()],
    ] as const) {
      const trace = decodeDirtyTrace(encodeDirtyTrace(h, rs));
      expect(trace.header).toEqual({ ...h, version: { major: 1, minor: 0 } });
      expectSameRecords(trace.records, rs);
      expect(trace.truncatedTail).toBeUndefined();
    }
  });

  it("picks the smaller of ranges and bitmap for each page set", () => {
    const [scattered, dense] = syncRecords();
    const small = encodeTraceRecord(syncHeader, { ...scattered!, order: { kind: "none" } });
    const big = encodeTraceRecord(syncHeader, dense!);
    // Framing 8 + fields 24 + encoding byte + order byte + crc 4 = 38 bytes around the set.
    expect(small.length - 38).toBeLessThan(12);
    expect(big.length - 38).toBe(Math.ceil(PAGES / 8));
  });

  it("decodes the same items however the input is chunked", () => {
    const bytes = encodeDirtyTrace(syncHeader, syncRecords());
    for (const size of [1, 3, 17, 64]) {
      const d = new DirtyTraceDecoder();
      const items = [];
      for (let at = 0; at < bytes.length; at += size) items.push(...d.push(bytes.subarray(at, at + size)));
      expect(d.end()).toBeUndefined();
      expect(items.map((i) => i.type)).toEqual(["header", "record", "record", "record"]);
      expectSameRecords(
        items.flatMap((i) => (i.type === "record" ? [i.record] : [])),
        syncRecords(),
      );
    }
  });

  it("reports truncation at every offset, naming where the cut unit starts", () => {
    const bytes = encodeDirtyTrace(syncHeader, syncRecords());
    const headerLength = encodeTraceHeader(syncHeader).length;
    const boundaries = [headerLength];
    for (const r of syncRecords())
      boundaries.push(boundaries.at(-1)! + encodeTraceRecord(syncHeader, r).length);
    expect(boundaries.at(-1)).toBe(bytes.length);
    for (let cut = 0; cut < bytes.length; cut++) {
      const prefix = bytes.subarray(0, cut);
      if (boundaries.includes(cut)) {
        expect(decodeDirtyTrace(prefix).records.length).toBe(boundaries.indexOf(cut));
        continue;
      }
      const err = errorOf(() => decodeDirtyTrace(prefix));
      expect(err.code).toBe("TRUNCATED");
      const unitStart = cut < headerLength ? 0 : Math.max(...boundaries.filter((b) => b <= cut));
      expect(err.offset).toBe(unitStart);
      if (cut >= headerLength) {
        const tolerant = decodeDirtyTrace(prefix, { tolerateTruncatedTail: true });
        expect(tolerant.truncatedTail).toEqual({ offset: unitStart, bytes: cut - unitStart });
        expect(tolerant.records.length).toBe(boundaries.indexOf(unitStart));
      }
    }
  });

  it("detects a flipped bit anywhere as a checksum, magic or length error", () => {
    const bytes = encodeDirtyTrace(asyncHeader, asyncRecords());
    for (let i = 0; i < bytes.length; i++) {
      const bad = bytes.slice();
      bad[i]! ^= 0x10;
      const err = errorOf(() => decodeDirtyTrace(bad));
      expect(["CHECKSUM_MISMATCH", "BAD_MAGIC", "UNSUPPORTED_VERSION", "CORRUPT", "TRUNCATED"]).toContain(
        err.code,
      );
    }
  });

  it("names the offset and kind of each header problem", () => {
    const bytes = encodeTraceHeader(syncHeader);
    const badMagic = bytes.slice();
    badMagic[0] = 0;
    expect(errorOf(() => decodeDirtyTrace(badMagic)).code).toBe("BAD_MAGIC");
    expect(errorOf(() => decodeDirtyTrace(new TextEncoder().encode("{}"))).code).toBe("BAD_MAGIC");
    expect(errorOf(() => decodeDirtyTrace(bytes.subarray(0, 3))).code).toBe("TRUNCATED");
    const newMajor = bytes.slice();
    newMajor[8] = 2;
    expect(errorOf(() => decodeDirtyTrace(newMajor)).code).toBe("UNSUPPORTED_VERSION");
    const badCrc = bytes.slice();
    badCrc[20]! ^= 1;
    const err = errorOf(() => decodeDirtyTrace(badCrc));
    expect([err.code, err.offset]).toEqual(["CHECKSUM_MISMATCH", 0]);
  });

  it("rejects records whose checksum is right but whose fields are inconsistent", () => {
    const header = encodeTraceHeader(syncHeader);
    const rec = encodeTraceRecord(syncHeader, syncRecords()[0]!);
    // Payload offset 8 (after the framing): epoch u32, flags u32, start u64, end u64, then the set.
    const swapped = new Uint8Array(header.length + rec.length);
    swapped.set(header);
    swapped.set(rec, header.length);
    const view = new DataView(swapped.buffer);
    view.setBigUint64(header.length + 8 + 8, 10n ** 12n, true); // start after end
    reseal(swapped, header.length, swapped.length);
    const err = errorOf(() => decodeDirtyTrace(swapped));
    expect([err.code, err.offset]).toEqual(["CORRUPT", header.length]);

    const twice = encodeDirtyTrace(syncHeader, []);
    const again = new Uint8Array(twice.length + 2 * rec.length);
    again.set(twice);
    again.set(rec, twice.length);
    again.set(rec, twice.length + rec.length);
    const dup = errorOf(() => decodeDirtyTrace(again));
    expect([dup.code, dup.offset]).toEqual(["CORRUPT", twice.length + rec.length]);
  });

  it("refuses to encode records that break the format's rules", () => {
    const [r] = syncRecords();
    const bad: Array<[DirtyTraceHeader, DirtyTraceRecord]> = [
      [asyncHeader, r!],
      [syncHeader, { ...r!, endNs: 0n }],
      [syncHeader, { ...r!, dirty: new PageSet(PAGES + 1) }],
      [
        syncHeader,
        {
          ...r!,
          order: { kind: "exact", pages: new Uint32Array([5, 5]), offsetsNs: new Float64Array([0, 1]) },
        },
      ],
      [
        syncHeader,
        {
          ...r!,
          order: { kind: "exact", pages: new Uint32Array([5, 6]), offsetsNs: new Float64Array([2, 1]) },
        },
      ],
      [
        syncHeader,
        { ...r!, order: { kind: "exact", pages: new Uint32Array([8]), offsetsNs: new Float64Array([0]) } },
      ],
      [
        asyncHeader,
        {
          ...asyncRecords()[0]!,
          order: { kind: "classes", classes: [{ thresholdNs: 5, pages: PageSet.fromPages(PAGES, [150]) }] },
        },
      ],
      [
        asyncHeader,
        {
          ...asyncRecords()[0]!,
          order: {
            kind: "classes",
            classes: [
              { thresholdNs: 5, pages: PageSet.fromPages(PAGES, [1, 2]) },
              { thresholdNs: 6, pages: PageSet.fromPages(PAGES, [1]) },
            ],
          },
        },
      ],
    ];
    for (const [h, rec] of bad) {
      expect(() => encodeTraceRecord(h, rec)).toThrow(
        expect.objectContaining({ name: expect.stringMatching(/Error$/) }),
      );
    }
    expect(() => encodeDirtyTrace(syncHeader, [r!, r!])).toThrow(
      expect.objectContaining({ code: "INVALID_ARGUMENT" }),
    );
    expect(() => encodeTraceHeader({ ...syncHeader, pageSize: 0 })).toThrow(
      expect.objectContaining({ code: "INVALID_ARGUMENT" }),
    );
  });
});
