/**
 * Where every page of a VM's RAM at an epoch is stored (for lazy restore): the chain resolved
 * once, newest part first, into a per-page block reference and per-block slot lists. Pure: the
 * parts and their verified indexes come from the store.
 */
import { resolve } from "node:path";
import { StoreArgumentError } from "../errors.js";
import { CODEC_RAW, type PageIndex, ZERO_RUN } from "./format.js";
import type { Part } from "./reader.js";

/** `blockOfPage` of a zero page, and `slotPages` of a slot a newer part shadows. */
export const NO_BLOCK = 0xffff_ffff;

/**
 * The blocks holding the newest content of some page, in chain order (newest part first) and
 * file order within a part: block `b` is `storedBytes[b]` raw bytes at `offset[b]` of
 * `files[file[b]]` with XXH64 `hash[b]`; its slot `k` holds guest page `slotPages[firstSlot[b] + k]`
 * (NO_BLOCK: shadowed). `blockOfPage[p]` is the block holding page p, or NO_BLOCK for a zero page.
 */
export interface RamLocation {
  readonly vmId: string;
  readonly epoch: number;
  readonly chainLength: number;
  readonly pageSize: number;
  readonly pageCount: number;
  readonly zeroPages: number;
  /** Absolute paths of the chain's `pages` files that hold a live block. */
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
  readonly blockOfPage: Uint32Array;
}

/** `parts`/`indexes` newest first, ending in a full part (as `#resolveChain` returns them). */
export function locatePages(parts: readonly Part[], indexes: readonly PageIndex[]): RamLocation {
  const top = parts[0]!.manifest;
  const pageCount = top.guestRamBytes / top.pageSize;
  const blockOfPage = new Uint32Array(pageCount).fill(NO_BLOCK);
  const decided = new Uint8Array(pageCount);
  const files: string[] = [];
  const fileOf: number[] = [];
  const offset: number[] = [];
  const storedBytes: number[] = [];
  const pagesIn: number[] = [];
  const hash: bigint[] = [];
  const firstSlot: number[] = [];
  const slotPages: number[] = [];
  let zeroPages = 0;
  for (let k = 0; k < parts.length; k++) {
    const ix = indexes[k]!;
    const bl = ix.blocks;
    const nb = bl.offset.length;
    const slots = nb === 0 ? 0 : (nb - 1) * ix.pagesPerBlock + bl.pageCount[nb - 1]!;
    const pageOfSlot = new Int32Array(slots).fill(-1);
    for (let r = 0; r < ix.runs.length; r += 3) {
      const first = ix.runs[r]!;
      const slot0 = ix.runs[r + 2]!;
      for (let p = first, end = first + ix.runs[r + 1]!; p < end; p++) {
        if (decided[p]) continue;
        decided[p] = 1;
        if (slot0 === ZERO_RUN) zeroPages++;
        else pageOfSlot[slot0 + p - first] = p;
      }
    }
    const path = resolve(parts[k]!.dir, "pages");
    for (let b = 0; b < nb; b++) {
      const s0 = b * ix.pagesPerBlock;
      const n = bl.pageCount[b]!;
      if (!pageOfSlot.subarray(s0, s0 + n).some((p) => p >= 0)) continue;
      if (bl.codec[b] !== CODEC_RAW) {
        throw new StoreArgumentError(
          `${path}: the block at offset ${bl.offset[b]} is compressed (codec ${bl.codec[b]}); ` +
            "lazy restore serves raw blocks only, restore this epoch eagerly",
          { vmId: parts[k]!.vmId, epoch: parts[k]!.epoch, path, offset: bl.offset[b]! },
        );
      }
      if (files[files.length - 1] !== path) files.push(path);
      const id = offset.length;
      fileOf.push(files.length - 1);
      offset.push(bl.offset[b]!);
      storedBytes.push(bl.storedBytes[b]!);
      pagesIn.push(n);
      hash.push(bl.hash[b]!);
      firstSlot.push(slotPages.length);
      for (let j = 0; j < n; j++) {
        const p = pageOfSlot[s0 + j]!;
        slotPages.push(p >= 0 ? p : NO_BLOCK);
        if (p >= 0) blockOfPage[p] = id;
      }
    }
    if (ix.full) break;
  }
  // Pages no part covers are zero (the chain ends in a full part).
  for (let p = 0; p < pageCount; p++) if (!decided[p]) zeroPages++;
  return {
    vmId: parts[0]!.vmId,
    epoch: parts[0]!.epoch,
    chainLength: parts.length,
    pageSize: top.pageSize,
    pageCount,
    zeroPages,
    files,
    blocks: {
      file: Uint32Array.from(fileOf),
      offset: Float64Array.from(offset),
      storedBytes: Uint32Array.from(storedBytes),
      pageCount: Uint16Array.from(pagesIn),
      hash: BigUint64Array.from(hash),
      firstSlot: Uint32Array.from(firstSlot),
    },
    slotPages: Uint32Array.from(slotPages),
    blockOfPage,
  };
}
