/**
 * The device-state blob the engines store in each epoch (pure codec). @vpc/storage keeps it opaque;
 * the envelope tells restore what the QEMU stream holds and which VM configuration it needs.
 *
 *   magic    8 bytes  "VPCDSE01"
 *   flags    u32 LE   bit 0: the stream carries all guest RAM (QEMU's own engines, no x-ignore-shared)
 *   metaLen  u32 LE   bytes of meta
 *   meta     UTF-8 JSON { engine, vm: VmConfig }
 *   stream   the rest: QEMU's migration stream, as written by `migrate`
 */
import { CheckpointError } from "../errors.js";
import type { VmConfig } from "../internal/config.js";

export const ENVELOPE_MAGIC = "VPCDSE01";
const FLAG_RAM = 1;
const HEADER = 16;

export interface EnvelopeMeta {
  readonly engine: string;
  readonly vm: VmConfig;
}

export interface Envelope {
  readonly ramIncluded: boolean;
  readonly meta: EnvelopeMeta;
  readonly stream: Uint8Array;
}

export function encodeEnvelope(e: Envelope): Buffer {
  const meta = Buffer.from(JSON.stringify(e.meta), "utf8");
  const head = Buffer.alloc(HEADER);
  head.write(ENVELOPE_MAGIC, 0, "latin1");
  head.writeUInt32LE(e.ramIncluded ? FLAG_RAM : 0, 8);
  head.writeUInt32LE(meta.length, 12);
  return Buffer.concat([head, meta, e.stream]);
}

export function decodeEnvelope(buf: Uint8Array): Envelope {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const bad = (msg: string): never => {
    throw new CheckpointError("decode-device-state", msg);
  };
  if (b.length < HEADER) bad(`device state blob has ${b.length} bytes, needs ${HEADER}`);
  if (b.toString("latin1", 0, 8) !== ENVELOPE_MAGIC) bad("device state blob has no VPCDSE01 envelope");
  const flags = b.readUInt32LE(8);
  if (flags & ~FLAG_RAM) bad(`unknown envelope flags 0x${flags.toString(16)}`);
  const metaLen = b.readUInt32LE(12);
  if (HEADER + metaLen > b.length) bad("envelope meta runs past the end of the blob");
  let meta: EnvelopeMeta;
  try {
    meta = JSON.parse(b.toString("utf8", HEADER, HEADER + metaLen)) as EnvelopeMeta;
  } catch (cause) {
    throw new CheckpointError("decode-device-state", "envelope meta is not JSON", { cause });
  }
  if (typeof meta?.engine !== "string" || typeof meta.vm?.name !== "string")
    bad("envelope meta lacks engine or vm");
  return { ramIncluded: (flags & FLAG_RAM) !== 0, meta, stream: b.subarray(HEADER + metaLen) };
}
