import { describe, expect, it } from "vitest";
import { ProtocolError } from "./errors.js";
import {
  decodeReply,
  encodeFrame,
  encodeReply,
  FLAG_ERROR,
  type Frame,
  FrameDecoder,
  MAX_FRAME_BYTES,
  Op,
  requestBody,
} from "./protocol.js";

const frames: Frame[] = [
  { id: 1, op: Op.hello, flags: 0, body: new Uint8Array(0) },
  { id: 2, op: Op.attach, flags: 0, body: requestBody.attach("async", 4096, "/dev/shm/vm/ram") },
  { id: 0xfffffffe, op: Op.release, flags: 0, body: requestBody.release([0, 7, 4095]) },
];

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

describe("frame codec", () => {
  const wire = concat(frames.map(encodeFrame));

  it("lays out length, id, op, flags little-endian", () => {
    const b = encodeFrame({ id: 0x01020304, op: 0x0506, flags: 1, body: Uint8Array.of(9) });
    expect([...b]).toEqual([9, 0, 0, 0, 4, 3, 2, 1, 6, 5, 1, 0, 9]);
  });

  it("decodes several frames from one chunk", () => {
    expect(new FrameDecoder().push(wire)).toEqual(frames);
  });

  it("decodes the same frames when split at every offset", () => {
    for (let cut = 0; cut <= wire.length; cut++) {
      const d = new FrameDecoder();
      const got = [...d.push(wire.subarray(0, cut)), ...d.push(wire.subarray(cut))];
      expect(got).toEqual(frames);
      expect(d.buffered).toBe(0);
    }
  });

  it("decodes byte by byte", () => {
    const d = new FrameDecoder();
    const got: Frame[] = [];
    for (const byte of wire) got.push(...d.push(Uint8Array.of(byte)));
    expect(got).toEqual(frames);
  });

  it("rejects impossible lengths", () => {
    const bad = new Uint8Array(12);
    new DataView(bad.buffer).setUint32(0, 3, true);
    expect(() => new FrameDecoder().push(bad)).toThrow(ProtocolError);
    new DataView(bad.buffer).setUint32(0, MAX_FRAME_BYTES + 1, true);
    expect(() => new FrameDecoder().push(bad)).toThrow(ProtocolError);
  });

  it("encodes request bodies", () => {
    const a = requestBody.attach("sync", 16, "/r");
    expect([...a]).toEqual([0, 0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0x2f, 0x72]);
    expect([...requestBody.mode("async")]).toEqual([1, 0, 0, 0]);
    expect([...requestBody.copy(1)]).toEqual([1, 0, 0, 0]);
  });
});

describe("replies", () => {
  it("decodes ok and error replies", () => {
    const [ok, err] = new FrameDecoder().push(
      concat([
        encodeReply(5, Op.harvest, { dirty: 3 }),
        encodeReply(6, Op.attach, { errno: 95, op: "attach", message: "no WP_ASYNC" }, true),
      ]),
    );
    expect(decodeReply(ok!)).toEqual({ type: "ok", id: 5, op: Op.harvest, value: { dirty: 3 } });
    expect(decodeReply(err!)).toEqual({
      type: "error",
      id: 6,
      op: Op.attach,
      errno: 95,
      opName: "attach",
      message: "no WP_ASYNC",
    });
  });

  it("rejects bodies that are not JSON objects", () => {
    const body = (s: string) => new TextEncoder().encode(s);
    expect(() => decodeReply({ id: 1, op: 0, flags: 0, body: body("[1]") })).toThrow(ProtocolError);
    expect(() => decodeReply({ id: 1, op: 0, flags: 0, body: body("{") })).toThrow(ProtocolError);
    expect(() => decodeReply({ id: 1, op: 0, flags: FLAG_ERROR, body: body('{"errno":"x"}') })).toThrow(
      ProtocolError,
    );
  });
});
