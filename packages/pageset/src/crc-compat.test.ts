import { crc32 } from "node:zlib";
import { describe, expect, it } from "vitest";
import { decodeDirtyTrace } from "./trace-codec.js";

describe("trace checksums (zlib.crc32)", () => {
  it("is CRC-32/ISO-HDLC, the polynomial of format 1.0", () => {
    // The standard check value for "123456789", the empty input, and a longer one.
    expect(crc32(new TextEncoder().encode("123456789"))).toBe(0xcbf43926);
    expect(crc32(new Uint8Array(0))).toBe(0);
    expect(crc32(new TextEncoder().encode("The quick brown fox jumps over the lazy dog"))).toBe(0x414fa339);
  });

  it("still reads a trace written by the table-driven CRC of earlier versions", () => {
    // encodeDirtyTrace of pageset 0.1.0 before zlib.crc32: pages 1, 2, 40 of 64 dirty in epoch 3.
    const old = Buffer.from(
      "VlBDRFRSQwABAAAARgAAAAAQAABAAAAAAAAEAAAAAAAAAAAAGgAAAHsid29ya2xvYWQiOiJjcmMtZml4dHVyZSJ9SHWT80RSRUMfAAAAAwAAAAAAAAAKAAAAAAAAABQAAAAAAAAAAAIBAiUBAARMAMA=",
      "base64",
    );
    const trace = decodeDirtyTrace(old);
    expect(trace.header.metadata).toEqual({ workload: "crc-fixture" });
    expect(trace.records.map((r) => [r.epoch, [...r.dirty]])).toEqual([[3, [1, 2, 40]]]);
  });
});
