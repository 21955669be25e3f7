import { describe, expect, it } from "vitest";
import { FrameFormatError } from "./errors.js";
import { encodeFrame, encodeFrames, FrameDecoder, QEMU_MAX_FRAME_BYTES } from "./frame-codec.js";

const frames = [
  Uint8Array.from([1, 2, 3]),
  new Uint8Array(0),
  new Uint8Array(1500).map((_, i) => i & 0xff),
  Uint8Array.from([9]),
];

function collect(dec: FrameDecoder, chunks: Uint8Array[]): number[][] {
  return chunks.flatMap((c) => dec.push(c).map((f) => [...f]));
}

describe("FrameDecoder", () => {
  it("decodes many frames in one chunk", () => {
    const dec = new FrameDecoder();
    expect(collect(dec, [encodeFrames(frames)])).toEqual(frames.map((f) => [...f]));
    expect(dec.pendingBytes).toBe(0);
    expect(dec.offset).toBe(encodeFrames(frames).length);
  });

  it("decodes the stream split at every offset", () => {
    // Compared with Buffer.equals, not a deep equal per cut: ~1,500 cuts must stay cheap on a busy machine.
    const stream = encodeFrames(frames);
    const badCuts: number[] = [];
    for (let cut = 0; cut <= stream.length; cut++) {
      const dec = new FrameDecoder();
      const got = [...dec.push(stream.subarray(0, cut)), ...dec.push(stream.subarray(cut))];
      const same =
        got.length === frames.length && got.every((f, i) => Buffer.from(f).equals(Buffer.from(frames[i]!)));
      if (!same || dec.pendingBytes !== 0) badCuts.push(cut);
    }
    expect(badCuts).toEqual([]);
  });

  it("decodes the stream fed one byte at a time", () => {
    const stream = encodeFrames(frames);
    const dec = new FrameDecoder();
    const chunks = [...stream].map((b) => Uint8Array.of(b));
    expect(collect(dec, chunks)).toEqual(frames.map((f) => [...f]));
  });

  it("keeps a partial tail and reports it", () => {
    const dec = new FrameDecoder();
    const one = encodeFrame(Uint8Array.from([7, 7, 7, 7]));
    expect(dec.push(one.subarray(0, 6))).toEqual([]);
    expect(dec.pendingBytes).toBe(6);
    expect(dec.push(one.subarray(6)).map((f) => [...f])).toEqual([[7, 7, 7, 7]]);
  });

  it("refuses a length above the limit with a typed error naming the offset", () => {
    const dec = new FrameDecoder({ maxFrameBytes: 100 });
    const ok = encodeFrame(new Uint8Array(100));
    const bad = encodeFrame(new Uint8Array(101));
    expect(dec.push(ok)).toHaveLength(1);
    let err: unknown;
    try {
      dec.push(bad.subarray(0, 4));
    } catch (e) {
      err = e;
    }
    expect(FrameFormatError.isInstance(err)).toBe(true);
    expect(err).toMatchObject({ code: "FRAME_TOO_LARGE", offset: 104, length: 101, limit: 100 });
  });

  it("defaults to QEMU's buffer size", () => {
    expect(new FrameDecoder().maxFrameBytes).toBe(QEMU_MAX_FRAME_BYTES);
    expect(() => new FrameDecoder({ maxFrameBytes: 0 })).toThrow(RangeError);
  });
});

describe("encodeFrame", () => {
  it("writes a 4-byte big-endian length", () => {
    expect([...encodeFrame(new Uint8Array(0x0102))].slice(0, 4)).toEqual([0, 0, 1, 2]);
  });
});
