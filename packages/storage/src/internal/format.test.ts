import { describe, expect, it } from "vitest";
import { StoreCorruptionError, StoreError, StoreVersionError } from "../errors.js";
import {
  decodeBlob,
  decodeGlobalManifest,
  decodeIndex,
  decodePagesHeader,
  decodeVmManifest,
  encodeBlob,
  encodeGlobalManifest,
  encodeIndex,
  encodePagesHeader,
  encodeVmManifest,
  findRun,
  type PageIndex,
  sniffKind,
  type VmManifest,
  ZERO_RUN,
} from "./format.js";

const ctx = { path: "/s/x" };

const manifest: VmManifest = {
  vmId: "vm-1",
  epoch: 7,
  full: false,
  compacted: false,
  parentEpoch: 6,
  parentManifestHash: 0x1234n,
  supersedesHash: 0n,
  guestRamBytes: 1 << 20,
  pageSize: 4096,
  createdAtMs: 1_700_000_000_000,
  files: [
    { name: "index", bytes: 100, hash: 1n },
    { name: "pages", bytes: 200, hash: 2n },
    { name: "devstate", bytes: 40, hash: 3n },
    { name: "chanlog", bytes: 40, hash: 0xffff_ffff_ffff_ffffn },
  ],
};

const index: PageIndex = {
  epoch: 7,
  guestRamBytes: 64 * 4096,
  pageSize: 4096,
  pagesPerBlock: 2,
  full: false,
  pagesFileBytes: 32 + 8192 + 100,
  blocks: {
    offset: Float64Array.from([32, 32 + 8192]),
    storedBytes: Uint32Array.from([8192, 100]),
    pageCount: Uint16Array.from([2, 1]),
    codec: Uint8Array.from([0, 1]),
    hash: BigUint64Array.from([5n, 6n]),
  },
  runs: Uint32Array.from([1, 2, 0, 10, 4, ZERO_RUN, 20, 1, 2]),
};

function expectCorrupt(fn: () => unknown, what: string, offset: number): void {
  try {
    fn();
  } catch (e) {
    expect(StoreError.isInstance(e)).toBe(true);
    expect(e).toBeInstanceOf(StoreCorruptionError);
    expect((e as StoreCorruptionError).what).toBe(what);
    expect((e as StoreCorruptionError).offset).toBe(offset);
    expect((e as StoreCorruptionError).path).toBe(ctx.path);
    return;
  }
  throw new Error("expected a corruption error");
}

describe("format codecs", () => {
  it("round-trips every kind", () => {
    expect(decodeVmManifest(encodeVmManifest(manifest), ctx)).toEqual(manifest);
    const full = {
      ...manifest,
      full: true,
      compacted: true,
      parentEpoch: null,
      supersedesHash: 9n,
      parentManifestHash: 0n,
    };
    expect(decodeVmManifest(encodeVmManifest(full), ctx)).toEqual(full);
    expect(decodeIndex(encodeIndex(index), ctx)).toEqual(index);
    const gm = {
      epoch: 3,
      createdAtMs: 5,
      vms: [
        { vmId: "a", manifestHash: 7n },
        { vmId: "bbbbbbbbbb", manifestHash: 8n },
      ],
    };
    expect(decodeGlobalManifest(encodeGlobalManifest({ ...gm, vms: [...gm.vms].reverse() }), ctx)).toEqual(
      gm,
    );
    expect(decodeBlob("DEVS", encodeBlob("DEVS", 4, Buffer.from("abc")), ctx)).toEqual({
      epoch: 4,
      payload: Buffer.from("abc"),
    });
    expect(decodePagesHeader(encodePagesHeader(9), ctx)).toEqual({ epoch: 9 });
    expect(sniffKind(encodeIndex(index))).toBe("INDX");
    expect(sniffKind(Buffer.from("nothing here"))).toBeUndefined();
  });

  it("reports magic, version, checksum and truncation at their offsets", () => {
    const b = encodeVmManifest(manifest);
    expectCorrupt(() => decodeBlob("CHAN", encodeBlob("DEVS", 1, Buffer.alloc(3)), ctx), "magic", 0);
    const flipped = Buffer.from(b);
    flipped[20]! ^= 1;
    expectCorrupt(() => decodeVmManifest(flipped, ctx), "checksum", 0);
    expectCorrupt(() => decodeVmManifest(b.subarray(0, 10), ctx), "truncated", 10);
    expectCorrupt(() => decodeVmManifest(b.subarray(0, 60), ctx), "truncated", 60);
    const newer = Buffer.from(b);
    newer.writeUInt16LE(1, 10);
    expect(() => decodeVmManifest(newer, ctx)).toThrow(StoreVersionError);
    const ph = encodePagesHeader(1);
    ph[17]! ^= 4;
    expectCorrupt(() => decodePagesHeader(ph, ctx), "checksum", 0);
  });

  it("rejects an index whose blocks or runs contradict each other", () => {
    const bad = { ...index, runs: Uint32Array.from([1, 2, 0, 2, 1, 2]) };
    expectCorrupt(() => decodeIndex(encodeIndex(bad), ctx), "structure", 64 + 2 * 24 + 12);
    const past = { ...index, runs: Uint32Array.from([60, 8, 0]) };
    expectCorrupt(() => decodeIndex(encodeIndex(past), ctx), "structure", 64 + 2 * 24);
    const gap = { ...index, pagesFileBytes: index.pagesFileBytes + 1 };
    expectCorrupt(() => decodeIndex(encodeIndex(gap), ctx), "structure", 56);
  });

  it("finds runs by binary search", () => {
    expect(findRun(index.runs, 0)).toBe(-1);
    expect(findRun(index.runs, 2)).toBe(0);
    expect(findRun(index.runs, 13)).toBe(1);
    expect(findRun(index.runs, 14)).toBe(-1);
    expect(findRun(index.runs, 20)).toBe(2);
  });
});
