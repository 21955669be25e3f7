import { xxh64 } from "@node-rs/xxhash";
import { FrameFormatError } from "./errors.js";
import { asBuffer, readI64LE, writeI64LE } from "./internal/int64.js";
import type { ChannelLogRecord } from "./switch-core.js";

/**
 * The channel log blob of one VM port for one epoch (FORMAT.md). Little-endian like the rest of
 * the checkpoint store; checksummed with XXH64 (seed 0) per record and over the whole blob.
 */

export const CHANNEL_LOG_MAGIC = "VNETCLOG";
export const CHANNEL_LOG_VERSION = { major: 1, minor: 0 } as const;
const HEADER_BYTES = 32;
const RECORD_FIXED_BYTES = 32;
const HASH_BYTES = 8;

export interface ChannelLog {
  epoch: number;
  records: ChannelLogRecord[];
}

function hash(buf: Buffer, start: number, end: number): bigint {
  return xxh64(buf.subarray(start, end), 0n);
}

export function encodeChannelLog(log: ChannelLog): Buffer {
  const ports = log.records.map((r) => Buffer.from(r.senderPort, "utf8"));
  let total = HEADER_BYTES + HASH_BYTES;
  log.records.forEach((r, i) => {
    total += RECORD_FIXED_BYTES + ports[i]!.length + r.frame.length + HASH_BYTES;
  });
  const out = Buffer.alloc(total);
  out.write(CHANNEL_LOG_MAGIC, 0, "latin1");
  out.writeUInt16LE(CHANNEL_LOG_VERSION.major, 8);
  out.writeUInt16LE(CHANNEL_LOG_VERSION.minor, 10);
  out.writeUInt32LE(HEADER_BYTES, 12);
  writeI64LE(out, log.epoch, 16);
  out.writeUInt32LE(log.records.length, 24);
  let at = HEADER_BYTES;
  log.records.forEach((r, i) => {
    const port = ports[i]!;
    if (port.length > 255) throw new RangeError(`sender port id longer than 255 bytes: ${r.senderPort}`);
    const start = at;
    const recordBytes = RECORD_FIXED_BYTES + port.length + r.frame.length + HASH_BYTES;
    out.writeUInt32LE(recordBytes, at);
    out.writeUInt8(port.length, at + 4);
    out.set(r.senderMac.subarray(0, 6), at + 6);
    writeI64LE(out, r.senderEpoch, at + 12);
    writeI64LE(out, Math.round(r.receivedAt * 1000), at + 20);
    out.writeUInt32LE(r.frame.length, at + 28);
    port.copy(out, at + RECORD_FIXED_BYTES);
    out.set(r.frame, at + RECORD_FIXED_BYTES + port.length);
    at = start + recordBytes - HASH_BYTES;
    out.writeBigUInt64LE(hash(out, start, at), at);
    at += HASH_BYTES;
  });
  out.writeBigUInt64LE(hash(out, 0, at), at);
  return out;
}

export function decodeChannelLog(blob: Uint8Array): ChannelLog {
  const buf = asBuffer(blob);
  const fail = (
    code: "TRUNCATED" | "BAD_MAGIC" | "UNSUPPORTED_VERSION" | "CHECKSUM_MISMATCH" | "CORRUPT",
    msg: string,
    offset: number,
  ) => new FrameFormatError(code, `channel log: ${msg}`, { offset });
  if (buf.length < HEADER_BYTES + HASH_BYTES)
    throw fail("TRUNCATED", `${buf.length} bytes is shorter than a header`, 0);
  if (buf.toString("latin1", 0, 8) !== CHANNEL_LOG_MAGIC) throw fail("BAD_MAGIC", "not a channel log", 0);
  const major = buf.readUInt16LE(8);
  const minor = buf.readUInt16LE(10);
  if (major !== CHANNEL_LOG_VERSION.major || minor > CHANNEL_LOG_VERSION.minor) {
    throw fail("UNSUPPORTED_VERSION", `version ${major}.${minor}, this reader knows 1.0`, 8);
  }
  const headerBytes = buf.readUInt32LE(12);
  if (headerBytes < HEADER_BYTES || headerBytes > buf.length - HASH_BYTES) {
    throw fail("CORRUPT", `header size ${headerBytes}`, 12);
  }
  const end = buf.length - HASH_BYTES;
  if (buf.readBigUInt64LE(end) !== hash(buf, 0, end)) throw fail("CHECKSUM_MISMATCH", "blob checksum", end);
  const epoch = readI64LE(buf, 16);
  const count = buf.readUInt32LE(24);
  const records: ChannelLogRecord[] = [];
  let at = headerBytes;
  for (let i = 0; i < count; i++) {
    if (end - at < RECORD_FIXED_BYTES + HASH_BYTES) throw fail("TRUNCATED", `record ${i} of ${count}`, at);
    const recordBytes = buf.readUInt32LE(at);
    const portLen = buf.readUInt8(at + 4);
    const frameLen = buf.readUInt32LE(at + 28);
    if (recordBytes !== RECORD_FIXED_BYTES + portLen + frameLen + HASH_BYTES || at + recordBytes > end) {
      throw fail("CORRUPT", `record ${i} size ${recordBytes}`, at);
    }
    const hashAt = at + recordBytes - HASH_BYTES;
    if (buf.readBigUInt64LE(hashAt) !== hash(buf, at, hashAt))
      throw fail("CHECKSUM_MISMATCH", `record ${i}`, at);
    const portAt = at + RECORD_FIXED_BYTES;
    records.push({
      senderPort: buf.toString("utf8", portAt, portAt + portLen),
      senderMac: new Uint8Array(buf.subarray(at + 6, at + 12)),
      senderEpoch: readI64LE(buf, at + 12),
      receivedAt: readI64LE(buf, at + 20) / 1000,
      frame: new Uint8Array(buf.subarray(portAt + portLen, portAt + portLen + frameLen)),
    });
    at += recordBytes;
  }
  if (at !== end) throw fail("CORRUPT", `${end - at} bytes after the last record`, at);
  return { epoch, records };
}
