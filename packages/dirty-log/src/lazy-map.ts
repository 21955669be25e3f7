/**
 * The lazy map (FORMAT.md "Lazy map"): where each page of guest RAM is, for a lazy restore. The
 * controller resolves a checkpoint chain into it once; the agent reads it at `lazyLoad` and fills
 * pages from the named store files. Pure encoding; `writeLazyMap` puts it in a file.
 */
import { writeFile } from "node:fs/promises";

export const LAZY_MAP_MAGIC = "VPCLAZY1";
export const LAZY_MAP_VERSION = 1;
export const LAZY_MAP_HEADER_BYTES = 80;
export const LAZY_MAP_BLOCK_BYTES = 32;
/** `blockOfPage` value of a zero page (no block: filled with zeros on its first touch). */
export const LAZY_ZERO_PAGE = 0xffffffff;
/** `slotPages` value of a slot whose content a newer part shadows (never copied in). */
export const LAZY_NO_PAGE = 0xffffffff;

/**
 * Blocks of raw (uncompressed) page data, each verified by XXH64 (seed 0) of its stored bytes
 * before any of its pages is served. Block `b` holds `pageCount[b]` pages; slot `k` of it fills
 * guest page `slotPages[firstSlot[b] + k]` (or nothing: LAZY_NO_PAGE).
 */
export interface LazyMap {
  readonly pageSize: number;
  readonly pageCount: number;
  /** Absolute paths of the files blocks are read from. */
  readonly files: readonly string[];
  readonly blocks: {
    readonly file: Uint32Array;
    readonly offset: Float64Array;
    readonly storedBytes: Uint32Array;
    readonly pageCount: Uint16Array;
    readonly hash: BigUint64Array;
    readonly firstSlot: Uint32Array;
  };
  readonly slotPages: Uint32Array;
  /** Per guest page: the block holding its content, or LAZY_ZERO_PAGE. */
  readonly blockOfPage: Uint32Array;
}

const align8 = (n: number): number => (n + 7) & ~7;

export function encodeLazyMap(map: LazyMap): Buffer {
  const names = map.files.map((f) => Buffer.from(f, "utf8"));
  const nb = map.blocks.file.length;
  const filesOff = LAZY_MAP_HEADER_BYTES;
  const filesBytes = names.reduce((s, n) => s + align8(4 + n.length), 0);
  const blocksOff = filesOff + filesBytes;
  const slotsOff = blocksOff + nb * LAZY_MAP_BLOCK_BYTES;
  const pagesOff = align8(slotsOff + map.slotPages.length * 4);
  const total = pagesOff + map.pageCount * 4;
  if (map.blockOfPage.length !== map.pageCount) {
    throw new RangeError(`lazy map: ${map.blockOfPage.length} page entries for ${map.pageCount} pages`);
  }
  const out = Buffer.alloc(total);
  out.write(LAZY_MAP_MAGIC, 0, "latin1");
  out.writeUInt32LE(LAZY_MAP_VERSION, 8);
  out.writeUInt32LE(map.pageSize, 12);
  out.writeBigUInt64LE(BigInt(map.pageCount), 16);
  out.writeUInt32LE(names.length, 24);
  out.writeUInt32LE(nb, 28);
  out.writeUInt32LE(map.slotPages.length, 32);
  out.writeBigUInt64LE(BigInt(filesOff), 40);
  out.writeBigUInt64LE(BigInt(blocksOff), 48);
  out.writeBigUInt64LE(BigInt(slotsOff), 56);
  out.writeBigUInt64LE(BigInt(pagesOff), 64);
  out.writeBigUInt64LE(BigInt(total), 72);
  let at = filesOff;
  for (const n of names) {
    out.writeUInt32LE(n.length, at);
    n.copy(out, at + 4);
    at += align8(4 + n.length);
  }
  const b = map.blocks;
  for (let i = 0; i < nb; i++) {
    const o = blocksOff + i * LAZY_MAP_BLOCK_BYTES;
    out.writeBigUInt64LE(BigInt(b.offset[i]!), o);
    out.writeBigUInt64LE(b.hash[i]!, o + 8);
    out.writeUInt32LE(b.storedBytes[i]!, o + 16);
    out.writeUInt32LE(b.file[i]!, o + 20);
    out.writeUInt32LE(b.firstSlot[i]!, o + 24);
    out.writeUInt16LE(b.pageCount[i]!, o + 28);
    // o + 30: codec 0 (raw), o + 31: reserved
  }
  Buffer.from(map.slotPages.buffer, map.slotPages.byteOffset, map.slotPages.byteLength).copy(out, slotsOff);
  Buffer.from(map.blockOfPage.buffer, map.blockOfPage.byteOffset, map.blockOfPage.byteLength).copy(
    out,
    pagesOff,
  );
  return out;
}

export async function writeLazyMap(path: string, map: LazyMap): Promise<void> {
  await writeFile(path, encodeLazyMap(map), { mode: 0o600 });
}
