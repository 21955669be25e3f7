import { describe, expect, it } from "vitest";
import { ProtocolError } from "./errors.js";
import { decodeSlotTable, decodeStagingHeader, SLOT_ENTRY_BYTES, STAGING_MAGIC } from "./staging.js";

function header(version = 1): Uint8Array {
  const b = new Uint8Array(48);
  b.set(new TextEncoder().encode(STAGING_MAGIC));
  const v = new DataView(b.buffer);
  v.setUint32(8, version, true);
  v.setUint32(12, 4096, true);
  v.setUint32(16, 3, true);
  v.setBigUint64(24, 4096n, true);
  v.setBigUint64(32, 8192n, true);
  v.setBigUint64(40, 65536n, true);
  return b;
}

describe("staging layout", () => {
  it("decodes the header", () => {
    expect(decodeStagingHeader(header())).toEqual({
      version: 1,
      pageSize: 4096,
      slotCount: 3,
      tableOffset: 4096,
      dataOffset: 8192,
      pageCount: 65536,
    });
  });

  it("rejects a bad magic or version", () => {
    const h = header();
    h[0] = 0;
    expect(() => decodeStagingHeader(h)).toThrow(ProtocolError);
    expect(() => decodeStagingHeader(header(2))).toThrow(ProtocolError);
  });

  it("lists filled slots only", () => {
    const t = new Uint8Array(3 * SLOT_ENTRY_BYTES);
    const v = new DataView(t.buffer);
    v.setBigUint64(0, 77n, true);
    v.setUint32(8, 1, true);
    v.setUint32(12, 1, true);
    v.setBigUint64(16, 5n, true); // state 0: free
    v.setBigUint64(32, 9n, true);
    v.setUint32(40, 1, true);
    v.setUint32(44, 2, true);
    expect(decodeSlotTable(t, 3)).toEqual([
      { slot: 0, page: 77, source: "cow" },
      { slot: 2, page: 9, source: "copy" },
    ]);
    expect(() => decodeSlotTable(t, 4)).toThrow(ProtocolError);
  });
});
