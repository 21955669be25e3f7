/**
 * Layout of the staging file (FORMAT.md "Staging file"), decoded from bytes (pure).
 */
import { ProtocolError } from "./errors.js";

export const STAGING_MAGIC = "VPCDLSTG";
export const STAGING_VERSION = 1;
/** Bytes of the header's fields (magic … page count); the header itself is padded to a page. */
export const STAGING_HEADER_BYTES = 48;
/** Bytes per slot-table entry: u64 page, u32 state, u32 source. */
export const SLOT_ENTRY_BYTES = 16;

export interface StagingHeader {
  version: number;
  pageSize: number;
  slotCount: number;
  tableOffset: number;
  dataOffset: number;
  pageCount: number;
}

/** "cow": saved by a COW fault on a write; "cow-read": on a read (async MINOR faults fire on reads too). */
export type SlotSource = "cow" | "cow-read" | "copy";
const SOURCES: Record<number, SlotSource> = { 1: "cow", 2: "copy", 3: "cow-read" };

/** A filled staging slot: the old content of `page` is at dataOffset + slot × pageSize. */
export interface StagedSlot {
  slot: number;
  page: number;
  source: SlotSource;
}

export function decodeStagingHeader(bytes: Uint8Array): StagingHeader {
  if (bytes.length < STAGING_HEADER_BYTES)
    throw new ProtocolError(`staging header: ${bytes.length} bytes, need ${STAGING_HEADER_BYTES}`, bytes);
  const magic = new TextDecoder().decode(bytes.subarray(0, 8));
  if (magic !== STAGING_MAGIC)
    throw new ProtocolError(`staging header: bad magic ${JSON.stringify(magic)}`, bytes);
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = v.getUint32(8, true);
  if (version !== STAGING_VERSION)
    throw new ProtocolError(`staging header: unsupported version ${version}`, bytes);
  return {
    version,
    pageSize: v.getUint32(12, true),
    slotCount: v.getUint32(16, true),
    tableOffset: Number(v.getBigUint64(24, true)),
    dataOffset: Number(v.getBigUint64(32, true)),
    pageCount: Number(v.getBigUint64(40, true)),
  };
}

/** Filled slots of a slot table (slotCount × 16 bytes), in slot order. */
export function decodeSlotTable(bytes: Uint8Array, slotCount: number): StagedSlot[] {
  if (bytes.length < slotCount * SLOT_ENTRY_BYTES) {
    throw new ProtocolError(`slot table: ${bytes.length} bytes for ${slotCount} slots`, bytes);
  }
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: StagedSlot[] = [];
  for (let s = 0; s < slotCount; s++) {
    const at = s * SLOT_ENTRY_BYTES;
    if (v.getUint32(at + 8, true) !== 1) continue;
    const code = v.getUint32(at + 12, true);
    const source = SOURCES[code];
    if (source === undefined)
      throw new ProtocolError(`slot table: slot ${s} has unknown source ${code}`, bytes);
    out.push({ slot: s, page: Number(v.getBigUint64(at, true)), source });
  }
  return out;
}
