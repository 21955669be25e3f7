import { describe, expect, it } from "vitest";
import { CHANNEL_LOG_MAGIC, decodeChannelLog, encodeChannelLog } from "./channel-log.js";
import { FrameFormatError } from "./errors.js";
import type { ChannelLogRecord } from "./switch-core.js";
import { ethFrame, vmMac } from "./testing/frames.js";

const records: ChannelLogRecord[] = [
  {
    senderPort: "vm-1",
    senderMac: ethFrame(vmMac(1), vmMac(1)).subarray(6, 12),
    senderEpoch: -1,
    receivedAt: 1_732_000_000_123.456,
    frame: ethFrame(vmMac(2), vmMac(1), 60, 1),
  },
  {
    senderPort: "höst-2",
    senderMac: Uint8Array.of(2, 0, 0, 0, 0, 9),
    senderEpoch: 2 ** 40 + 3,
    receivedAt: 0,
    frame: ethFrame(vmMac(2), vmMac(9), 1514, 2),
  },
];

function decodeError(blob: Uint8Array): unknown {
  try {
    decodeChannelLog(blob);
  } catch (e) {
    return e;
  }
  throw new Error("decoded a bad blob");
}

describe("channel log blob", () => {
  it("round-trips records, epochs (including -1 and > 2^32) and microsecond times", () => {
    const blob = encodeChannelLog({ epoch: 7, records });
    expect(blob.toString("latin1", 0, 8)).toBe(CHANNEL_LOG_MAGIC);
    const back = decodeChannelLog(blob);
    expect(back.epoch).toBe(7);
    expect(back.records).toEqual(
      records.map((r) => ({
        ...r,
        senderMac: Uint8Array.from(r.senderMac),
        frame: Uint8Array.from(r.frame),
      })),
    );
  });

  it("round-trips an empty log", () => {
    expect(decodeChannelLog(encodeChannelLog({ epoch: 0, records: [] }))).toEqual({ epoch: 0, records: [] });
  });

  it("detects any flipped byte", () => {
    const blob = encodeChannelLog({ epoch: 3, records });
    for (let i = 0; i < blob.length; i += 7) {
      const bad = Buffer.from(blob);
      bad[i]! ^= 0x40;
      const err = decodeError(bad);
      expect(FrameFormatError.isInstance(err), `byte ${i}`).toBe(true);
    }
  });

  it("detects truncation and names the code", () => {
    const blob = encodeChannelLog({ epoch: 3, records });
    expect(decodeError(blob.subarray(0, 20))).toMatchObject({ code: "TRUNCATED" });
    expect(decodeError(blob.subarray(0, blob.length - 1))).toMatchObject({ code: "CHECKSUM_MISMATCH" });
    const wrongVersion = Buffer.from(blob);
    wrongVersion.writeUInt16LE(2, 8);
    expect(decodeError(wrongVersion)).toMatchObject({ code: "UNSUPPORTED_VERSION" });
  });
});
