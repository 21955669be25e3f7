/**
 * Pure encoders and decoders for every file kind of FORMAT.md. No I/O: each decoder takes the bytes
 * and a context (path, vmId, epoch) used only to build precise errors.
 */
import { xxh64 } from "@node-rs/xxhash";
import { StoreCorruptionError, StoreVersionError } from "../errors.js";

export const FORMAT_MAJOR = 1;
export const FORMAT_MINOR = 0;

export type FileKind = "STOR" | "EPMF" | "VMMF" | "INDX" | "PAGE" | "DEVS" | "CHAN";
export const FILE_KINDS: readonly FileKind[] = ["STOR", "EPMF", "VMMF", "INDX", "PAGE", "DEVS", "CHAN"];

/** Fixed header size of each kind in format 1.0 (prefix included). */
export const HEADER_BYTES: Record<FileKind, number> = {
  STOR: 32,
  EPMF: 40,
  VMMF: 80,
  INDX: 64,
  PAGE: 32,
  DEVS: 32,
  CHAN: 32,
};

const PREFIX_BYTES = 16;
const TRAILER_BYTES = 8;
export const ZERO_RUN = 0xffff_ffff;
export const CODEC_RAW = 0;
export const CODEC_LZ4 = 1;

const FLAG_FULL = 1;
const FLAG_HAS_PARENT = 2;
const FLAG_COMPACTED = 4;

export interface Ctx {
  path: string;
  vmId?: string | undefined;
  epoch?: number | undefined;
}

export function magicOf(kind: FileKind): Buffer {
  return Buffer.from(`VPC.${kind}`, "latin1");
}

export const hash64 = (b: Uint8Array): bigint => xxh64(b);

/** The kind named by a file's magic, or undefined when it is not one of ours. */
export function sniffKind(buf: Uint8Array): FileKind | undefined {
  if (buf.length < 8) return undefined;
  const m = Buffer.from(buf.buffer, buf.byteOffset, 8).toString("latin1");
  return FILE_KINDS.find((k) => m === `VPC.${k}`);
}

export function corrupt(
  what: StoreCorruptionError["what"],
  msg: string,
  ctx: Ctx,
  offset: number,
): StoreCorruptionError {
  return new StoreCorruptionError(what, `${ctx.path}: ${msg} at offset ${offset}`, {
    path: ctx.path,
    offset,
    vmId: ctx.vmId,
    epoch: ctx.epoch,
  });
}

function view(buf: Uint8Array): Buffer {
  return Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
}

function writePrefix(out: Buffer, kind: FileKind): void {
  magicOf(kind).copy(out, 0);
  out.writeUInt16LE(FORMAT_MAJOR, 8);
  out.writeUInt16LE(FORMAT_MINOR, 10);
  out.writeUInt32LE(HEADER_BYTES[kind], 12);
}

/** Checks magic and version; returns the file's header size. */
export function checkPrefix(b: Buffer, kind: FileKind, ctx: Ctx): number {
  if (b.length < PREFIX_BYTES)
    throw corrupt("truncated", `file of ${b.length} bytes is too short`, ctx, b.length);
  if (!b.subarray(0, 8).equals(magicOf(kind))) {
    throw corrupt("magic", `bad magic (expected VPC.${kind})`, ctx, 0);
  }
  const major = b.readUInt16LE(8);
  const minor = b.readUInt16LE(10);
  if (major !== FORMAT_MAJOR || minor > FORMAT_MINOR) {
    throw new StoreVersionError(
      `${ctx.path}: format version ${major}.${minor} is not readable by ${FORMAT_MAJOR}.${FORMAT_MINOR} at offset 8`,
      { path: ctx.path, offset: 8, vmId: ctx.vmId, epoch: ctx.epoch },
    );
  }
  const headerBytes = b.readUInt32LE(12);
  if (headerBytes < HEADER_BYTES[kind])
    throw corrupt("structure", `header size ${headerBytes} too small`, ctx, 12);
  if (headerBytes > b.length)
    throw corrupt("truncated", `header of ${headerBytes} bytes cut short`, ctx, b.length);
  return headerBytes;
}

function sealTrailer(out: Buffer): Buffer {
  out.writeBigUInt64LE(hash64(out.subarray(0, out.length - TRAILER_BYTES)), out.length - TRAILER_BYTES);
  return out;
}

function checkTrailer(b: Buffer, headerBytes: number, ctx: Ctx): void {
  if (b.length < headerBytes + TRAILER_BYTES) {
    throw corrupt("truncated", `file of ${b.length} bytes has no trailer`, ctx, b.length);
  }
  const end = b.length - TRAILER_BYTES;
  if (hash64(b.subarray(0, end)) !== b.readBigUInt64LE(end)) {
    throw corrupt("checksum", `checksum over bytes 0..${end} does not match the trailer`, ctx, 0);
  }
}

function u64(b: Buffer, off: number, ctx: Ctx): number {
  const v = b.readBigUInt64LE(off);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw corrupt("structure", "64-bit field out of range", ctx, off);
  return Number(v);
}

const pad8 = (n: number): number => (n + 7) & ~7;

// ---------------------------------------------------------------- STORE

export interface StoreMarker {
  createdAtMs: number;
}

export function encodeStoreMarker(m: StoreMarker): Buffer {
  const out = Buffer.alloc(HEADER_BYTES.STOR + TRAILER_BYTES);
  writePrefix(out, "STOR");
  out.writeBigUInt64LE(BigInt(m.createdAtMs), 16);
  return sealTrailer(out);
}

export function decodeStoreMarker(buf: Uint8Array, ctx: Ctx): StoreMarker {
  const b = view(buf);
  const hb = checkPrefix(b, "STOR", ctx);
  checkTrailer(b, hb, ctx);
  return { createdAtMs: u64(b, 16, ctx) };
}

// ---------------------------------------------------------------- global manifest

export interface GlobalManifest {
  epoch: number;
  createdAtMs: number;
  vms: { vmId: string; manifestHash: bigint }[];
}

export function encodeGlobalManifest(m: GlobalManifest): Buffer {
  const vms = [...m.vms].sort((a, b) => (a.vmId < b.vmId ? -1 : a.vmId > b.vmId ? 1 : 0));
  const ids = vms.map((v) => Buffer.from(v.vmId, "utf8"));
  const size = HEADER_BYTES.EPMF + ids.reduce((s, id) => s + 16 + pad8(id.length), 0) + TRAILER_BYTES;
  const out = Buffer.alloc(size);
  writePrefix(out, "EPMF");
  out.writeBigUInt64LE(BigInt(m.epoch), 16);
  out.writeBigUInt64LE(BigInt(m.createdAtMs), 24);
  out.writeUInt32LE(vms.length, 32);
  let off = HEADER_BYTES.EPMF;
  vms.forEach((v, i) => {
    const id = ids[i]!;
    out.writeBigUInt64LE(v.manifestHash, off);
    out.writeUInt16LE(id.length, off + 8);
    id.copy(out, off + 16);
    off += 16 + pad8(id.length);
  });
  return sealTrailer(out);
}

export function decodeGlobalManifest(buf: Uint8Array, ctx: Ctx): GlobalManifest {
  const b = view(buf);
  const hb = checkPrefix(b, "EPMF", ctx);
  checkTrailer(b, hb, ctx);
  const end = b.length - TRAILER_BYTES;
  const count = b.readUInt32LE(32);
  const vms: GlobalManifest["vms"] = [];
  let off = hb;
  for (let i = 0; i < count; i++) {
    if (off + 16 > end) throw corrupt("structure", `VM entry ${i} runs past the end`, ctx, off);
    const manifestHash = b.readBigUInt64LE(off);
    const len = b.readUInt16LE(off + 8);
    if (off + 16 + len > end) throw corrupt("structure", `VM id ${i} runs past the end`, ctx, off);
    vms.push({ vmId: b.toString("utf8", off + 16, off + 16 + len), manifestHash });
    off += 16 + pad8(len);
  }
  return { epoch: u64(b, 16, ctx), createdAtMs: u64(b, 24, ctx), vms };
}

// ---------------------------------------------------------------- per-VM manifest

export type PartFileName = "index" | "pages" | "devstate" | "chanlog";
export const PART_FILES: readonly PartFileName[] = ["index", "pages", "devstate", "chanlog"];

export interface FileRef {
  name: PartFileName;
  bytes: number;
  hash: bigint;
}

export interface VmManifest {
  vmId: string;
  epoch: number;
  full: boolean;
  compacted: boolean;
  /** null for a full part. */
  parentEpoch: number | null;
  parentManifestHash: bigint;
  supersedesHash: bigint;
  guestRamBytes: number;
  pageSize: number;
  createdAtMs: number;
  files: FileRef[];
}

const FILE_REF_BYTES = 24;

export function encodeVmManifest(m: VmManifest): Buffer {
  const id = Buffer.from(m.vmId, "utf8");
  const size = HEADER_BYTES.VMMF + pad8(id.length) + FILE_REF_BYTES * m.files.length + TRAILER_BYTES;
  const out = Buffer.alloc(size);
  writePrefix(out, "VMMF");
  out.writeBigUInt64LE(BigInt(m.epoch), 16);
  out.writeBigUInt64LE(BigInt(m.parentEpoch ?? 0), 24);
  out.writeBigUInt64LE(m.parentManifestHash, 32);
  out.writeBigUInt64LE(m.supersedesHash, 40);
  out.writeBigUInt64LE(BigInt(m.guestRamBytes), 48);
  out.writeBigUInt64LE(BigInt(m.createdAtMs), 56);
  out.writeUInt32LE(m.pageSize, 64);
  const flags =
    (m.full ? FLAG_FULL : 0) |
    (m.parentEpoch !== null ? FLAG_HAS_PARENT : 0) |
    (m.compacted ? FLAG_COMPACTED : 0);
  out.writeUInt32LE(flags, 68);
  out.writeUInt16LE(id.length, 72);
  out.writeUInt16LE(m.files.length, 74);
  id.copy(out, HEADER_BYTES.VMMF);
  let off = HEADER_BYTES.VMMF + pad8(id.length);
  for (const f of m.files) {
    out.writeUInt8(PART_FILES.indexOf(f.name) + 1, off);
    out.writeBigUInt64LE(BigInt(f.bytes), off + 8);
    out.writeBigUInt64LE(f.hash, off + 16);
    off += FILE_REF_BYTES;
  }
  return sealTrailer(out);
}

export function decodeVmManifest(buf: Uint8Array, ctx: Ctx): VmManifest {
  const b = view(buf);
  const hb = checkPrefix(b, "VMMF", ctx);
  checkTrailer(b, hb, ctx);
  const flags = b.readUInt32LE(68);
  const full = (flags & FLAG_FULL) !== 0;
  const hasParent = (flags & FLAG_HAS_PARENT) !== 0;
  if (full === hasParent) throw corrupt("structure", "a part must be either full or have a parent", ctx, 68);
  const idLen = b.readUInt16LE(72);
  const fileCount = b.readUInt16LE(74);
  let off = hb + pad8(idLen);
  if (off + fileCount * FILE_REF_BYTES > b.length - TRAILER_BYTES) {
    throw corrupt("structure", "file table runs past the end", ctx, hb);
  }
  const files: FileRef[] = [];
  for (let i = 0; i < fileCount; i++, off += FILE_REF_BYTES) {
    const name = PART_FILES[b.readUInt8(off) - 1];
    // Unknown kinds belong to a newer minor; this reader has no use for them.
    if (name !== undefined)
      files.push({ name, bytes: u64(b, off + 8, ctx), hash: b.readBigUInt64LE(off + 16) });
  }
  for (const name of PART_FILES) {
    if (!files.some((f) => f.name === name)) throw corrupt("structure", `no entry for file ${name}`, ctx, hb);
  }
  const pageSize = b.readUInt32LE(64);
  const guestRamBytes = u64(b, 48, ctx);
  if (!validPageSize(pageSize) || guestRamBytes % pageSize !== 0) {
    throw corrupt("structure", `bad page size ${pageSize} or RAM size ${guestRamBytes}`, ctx, 48);
  }
  return {
    vmId: b.toString("utf8", hb, hb + idLen),
    epoch: u64(b, 16, ctx),
    full,
    compacted: (flags & FLAG_COMPACTED) !== 0,
    parentEpoch: hasParent ? u64(b, 24, ctx) : null,
    parentManifestHash: b.readBigUInt64LE(32),
    supersedesHash: b.readBigUInt64LE(40),
    guestRamBytes,
    pageSize,
    createdAtMs: u64(b, 56, ctx),
    files,
  };
}

export function validPageSize(n: number): boolean {
  return Number.isInteger(n) && n >= 512 && n <= 1 << 20 && (n & (n - 1)) === 0;
}

// ---------------------------------------------------------------- page index

/** Struct-of-arrays block table: cheap to build and scan for a million pages. */
export interface BlockTable {
  offset: Float64Array;
  storedBytes: Uint32Array;
  pageCount: Uint16Array;
  codec: Uint8Array;
  hash: BigUint64Array;
}

export interface PageIndex {
  epoch: number;
  guestRamBytes: number;
  pageSize: number;
  pagesPerBlock: number;
  full: boolean;
  pagesFileBytes: number;
  blocks: BlockTable;
  /** Triples (firstPage, pageCount, firstSlot | ZERO_RUN), sorted by firstPage. */
  runs: Uint32Array;
}

const BLOCK_BYTES = 24;
const RUN_BYTES = 12;

export function encodeIndex(ix: PageIndex): Buffer {
  const nb = ix.blocks.offset.length;
  const nr = ix.runs.length / 3;
  const out = Buffer.alloc(HEADER_BYTES.INDX + nb * BLOCK_BYTES + nr * RUN_BYTES + TRAILER_BYTES);
  writePrefix(out, "INDX");
  out.writeBigUInt64LE(BigInt(ix.epoch), 16);
  out.writeBigUInt64LE(BigInt(ix.guestRamBytes), 24);
  out.writeUInt32LE(ix.pageSize, 32);
  out.writeUInt32LE(ix.pagesPerBlock, 36);
  out.writeUInt32LE(nb, 40);
  out.writeUInt32LE(nr, 44);
  out.writeUInt32LE(ix.full ? FLAG_FULL : 0, 48);
  out.writeBigUInt64LE(BigInt(ix.pagesFileBytes), 56);
  let off = HEADER_BYTES.INDX;
  const bl = ix.blocks;
  for (let i = 0; i < nb; i++, off += BLOCK_BYTES) {
    out.writeBigUInt64LE(BigInt(bl.offset[i]!), off);
    out.writeUInt32LE(bl.storedBytes[i]!, off + 8);
    out.writeUInt16LE(bl.pageCount[i]!, off + 12);
    out.writeUInt8(bl.codec[i]!, off + 14);
    out.writeBigUInt64LE(bl.hash[i]!, off + 16);
  }
  for (let i = 0; i < ix.runs.length; i++, off += 4) out.writeUInt32LE(ix.runs[i]!, off);
  return sealTrailer(out);
}

export function decodeIndex(buf: Uint8Array, ctx: Ctx): PageIndex {
  const b = view(buf);
  const hb = checkPrefix(b, "INDX", ctx);
  checkTrailer(b, hb, ctx);
  const pageSize = b.readUInt32LE(32);
  const pagesPerBlock = b.readUInt32LE(36);
  const nb = b.readUInt32LE(40);
  const nr = b.readUInt32LE(44);
  const guestRamBytes = u64(b, 24, ctx);
  if (
    !validPageSize(pageSize) ||
    guestRamBytes % pageSize !== 0 ||
    pagesPerBlock < 1 ||
    pagesPerBlock > 0xffff
  ) {
    throw corrupt("structure", "bad page size, RAM size or pages per block", ctx, 24);
  }
  if (hb + nb * BLOCK_BYTES + nr * RUN_BYTES + TRAILER_BYTES !== b.length) {
    throw corrupt("structure", `${nb} blocks and ${nr} runs do not fill ${b.length} bytes`, ctx, 40);
  }
  const blocks: BlockTable = {
    offset: new Float64Array(nb),
    storedBytes: new Uint32Array(nb),
    pageCount: new Uint16Array(nb),
    codec: new Uint8Array(nb),
    hash: new BigUint64Array(nb),
  };
  let off = hb;
  for (let i = 0; i < nb; i++, off += BLOCK_BYTES) {
    blocks.offset[i] = u64(b, off, ctx);
    blocks.storedBytes[i] = b.readUInt32LE(off + 8);
    blocks.pageCount[i] = b.readUInt16LE(off + 12);
    blocks.codec[i] = b.readUInt8(off + 14);
    blocks.hash[i] = b.readBigUInt64LE(off + 16);
  }
  const runs = new Uint32Array(nr * 3);
  for (let i = 0; i < runs.length; i++, off += 4) runs[i] = b.readUInt32LE(off);
  const ix: PageIndex = {
    epoch: u64(b, 16, ctx),
    guestRamBytes,
    pageSize,
    pagesPerBlock,
    full: (b.readUInt32LE(48) & FLAG_FULL) !== 0,
    pagesFileBytes: u64(b, 56, ctx),
    blocks,
    runs,
  };
  checkIndexStructure(ix, ctx);
  return ix;
}

/** Rejects an index whose runs or blocks contradict each other, so readers can trust lookups. */
function checkIndexStructure(ix: PageIndex, ctx: Ctx): void {
  const pages = ix.guestRamBytes / ix.pageSize;
  const bl = ix.blocks;
  const nb = bl.offset.length;
  let expectOffset: number = HEADER_BYTES.PAGE;
  for (let i = 0; i < nb; i++) {
    const full = i < nb - 1 ? bl.pageCount[i] === ix.pagesPerBlock : bl.pageCount[i]! >= 1;
    if (bl.offset[i] !== expectOffset || !full || bl.pageCount[i]! > ix.pagesPerBlock) {
      throw corrupt("structure", `block ${i} is out of place`, ctx, HEADER_BYTES.INDX + i * BLOCK_BYTES);
    }
    expectOffset += bl.storedBytes[i]!;
  }
  if (expectOffset !== ix.pagesFileBytes) {
    throw corrupt("structure", "blocks do not add up to the pages file size", ctx, 56);
  }
  const slots = nb === 0 ? 0 : (nb - 1) * ix.pagesPerBlock + bl.pageCount[nb - 1]!;
  let nextPage = 0;
  const runsAt = HEADER_BYTES.INDX + nb * BLOCK_BYTES;
  for (let r = 0; r < ix.runs.length; r += 3) {
    const first = ix.runs[r]!;
    const count = ix.runs[r + 1]!;
    const slot = ix.runs[r + 2]!;
    const bad =
      count === 0 || first < nextPage || first + count > pages || (slot !== ZERO_RUN && slot + count > slots);
    if (bad) throw corrupt("structure", `run ${r / 3} is out of range or order`, ctx, runsAt + r * 4);
    nextPage = first + count;
  }
}

/** Index of the run covering `page`, or -1. Binary search over the sorted runs. */
export function findRun(runs: Uint32Array, page: number): number {
  let lo = 0;
  let hi = runs.length / 3 - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const first = runs[mid * 3]!;
    if (page < first) hi = mid - 1;
    else if (page >= first + runs[mid * 3 + 1]!) lo = mid + 1;
    else return mid;
  }
  return -1;
}

// ---------------------------------------------------------------- pages header

export function encodePagesHeader(epoch: number): Buffer {
  const out = Buffer.alloc(HEADER_BYTES.PAGE);
  writePrefix(out, "PAGE");
  out.writeBigUInt64LE(BigInt(epoch), 16);
  out.writeBigUInt64LE(hash64(out.subarray(0, 24)), 24);
  return out;
}

export function decodePagesHeader(buf: Uint8Array, ctx: Ctx): { epoch: number } {
  const b = view(buf);
  checkPrefix(b, "PAGE", ctx);
  if (b.length < HEADER_BYTES.PAGE) throw corrupt("truncated", "pages header cut short", ctx, b.length);
  if (hash64(b.subarray(0, 24)) !== b.readBigUInt64LE(24)) {
    throw corrupt("checksum", "pages header checksum mismatch", ctx, 0);
  }
  return { epoch: u64(b, 16, ctx) };
}

// ---------------------------------------------------------------- blobs

export type BlobKind = "DEVS" | "CHAN";

export function encodeBlob(kind: BlobKind, epoch: number, payload: Uint8Array): Buffer {
  const out = Buffer.alloc(HEADER_BYTES[kind] + payload.length + TRAILER_BYTES);
  writePrefix(out, kind);
  out.writeBigUInt64LE(BigInt(epoch), 16);
  out.writeBigUInt64LE(BigInt(payload.length), 24);
  out.set(payload, HEADER_BYTES[kind]);
  return sealTrailer(out);
}

export function decodeBlob(kind: BlobKind, buf: Uint8Array, ctx: Ctx): { epoch: number; payload: Buffer } {
  const b = view(buf);
  const hb = checkPrefix(b, kind, ctx);
  checkTrailer(b, hb, ctx);
  const n = u64(b, 24, ctx);
  if (hb + n + TRAILER_BYTES !== b.length)
    throw corrupt("structure", `payload size ${n} does not fit`, ctx, 24);
  return { epoch: u64(b, 16, ctx), payload: Buffer.from(b.subarray(hb, hb + n)) };
}
