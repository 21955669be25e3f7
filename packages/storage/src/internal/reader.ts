/**
 * Verified reads of committed parts: whole small files, page blocks, RAM materialisation and single
 * pages. Nothing read here is handed out before the check that covers it has passed.
 */
import type { FileHandle } from "node:fs/promises";
import { open, readFile } from "node:fs/promises";
import { join } from "node:path";
import { Xxh64 } from "@node-rs/xxhash";
import { uncompressSync } from "lz4-napi";
import { StoreVersionError } from "../errors.js";
import {
  type BlockTable,
  CODEC_LZ4,
  CODEC_RAW,
  type Ctx,
  corrupt,
  decodeBlob,
  decodeIndex,
  decodePagesHeader,
  findRun,
  HEADER_BYTES,
  hash64,
  type PageIndex,
  type PartFileName,
  type VmManifest,
  ZERO_RUN,
} from "./format.js";
import { io, isEnoent } from "./fsio.js";

/** One committed part of a VM's chain, with its verified manifest. */
export interface Part {
  vmId: string;
  epoch: number;
  dir: string;
  manifest: VmManifest;
  /** XXH64 of the manifest file. */
  manifestHash: bigint;
}

export type RestoreStrategy = "newest-first" | "oldest-first";

const READ_BYTES = 8 << 20;
const MAX_IOVECS = 1000;

function ctxOf(part: Part, name: string): Ctx {
  return { path: join(part.dir, name), vmId: part.vmId, epoch: part.epoch };
}

function fileRef(part: Part, name: PartFileName) {
  const ref = part.manifest.files.find((f) => f.name === name);
  // decodeVmManifest guarantees every file has an entry.
  if (!ref) throw corrupt("structure", `manifest has no entry for ${name}`, ctxOf(part, "manifest"), 0);
  return ref;
}

function checkLength(actual: number, expected: number, ctx: Ctx): void {
  if (actual < expected)
    throw corrupt("truncated", `file is ${actual} bytes, manifest says ${expected}`, ctx, actual);
  if (actual > expected)
    throw corrupt("length", `file is ${actual} bytes, manifest says ${expected}`, ctx, expected);
}

/** Reads a small part file whole and checks length, structure (via `decode`) and whole-file hash. */
export async function readVerified<T>(
  part: Part,
  name: PartFileName,
  decode: (b: Buffer, ctx: Ctx) => T,
): Promise<T> {
  const ctx = ctxOf(part, name);
  const ref = fileRef(part, name);
  let bytes: Buffer;
  try {
    bytes = await readFile(ctx.path);
  } catch (e) {
    if (isEnoent(e)) throw corrupt("truncated", "file is missing", ctx, 0);
    return await io("read", ctx.path, () => Promise.reject(e));
  }
  checkLength(bytes.length, ref.bytes, ctx);
  const value = decode(bytes, ctx);
  if (hash64(bytes) !== ref.hash)
    throw corrupt("checksum", "file checksum differs from the manifest", ctx, 0);
  return value;
}

export function loadIndex(part: Part): Promise<PageIndex> {
  return readVerified(part, "index", (b, ctx) => {
    const ix = decodeIndex(b, ctx);
    const m = part.manifest;
    if (
      ix.epoch !== m.epoch ||
      ix.full !== m.full ||
      ix.guestRamBytes !== m.guestRamBytes ||
      ix.pageSize !== m.pageSize
    ) {
      throw corrupt("binding", "index header disagrees with the manifest", ctx, 16);
    }
    return ix;
  });
}

export function readBlobPayload(part: Part, name: "devstate" | "chanlog"): Promise<Buffer> {
  return readVerified(part, name, (b, ctx) => {
    const blob = decodeBlob(name === "devstate" ? "DEVS" : "CHAN", b, ctx);
    if (blob.epoch !== part.epoch) throw corrupt("binding", `epoch ${blob.epoch} is not the part's`, ctx, 16);
    return blob.payload;
  });
}

/** What reading blocks of a pages file needs from its index. */
export type BlockLayout = Pick<PageIndex, "blocks" | "pageSize">;

/** An open `pages` file whose length and header have been checked. */
export class PagesFile {
  private constructor(
    readonly fh: FileHandle,
    readonly ctx: Ctx,
    readonly ix: BlockLayout,
  ) {}

  /**
   * A pages file this process is still writing (EpochWriter): no committed manifest to check it
   * against yet, but the writer knows every block it wrote, and each block read is verified.
   */
  static ofWriter(fh: FileHandle, ctx: Ctx, layout: BlockLayout): PagesFile {
    return new PagesFile(fh, ctx, layout);
  }

  static async open(part: Part, ix: PageIndex): Promise<PagesFile> {
    const ctx = ctxOf(part, "pages");
    let fh: FileHandle;
    try {
      fh = await open(ctx.path, "r");
    } catch (e) {
      if (isEnoent(e)) throw corrupt("truncated", "file is missing", ctx, 0);
      return await io("open", ctx.path, () => Promise.reject(e));
    }
    try {
      const size = (await io("stat", ctx.path, () => fh.stat())).size;
      checkLength(size, fileRef(part, "pages").bytes, ctx);
      if (ix.pagesFileBytes !== size) throw corrupt("binding", "index and pages file sizes differ", ctx, 0);
      const head = Buffer.alloc(HEADER_BYTES.PAGE);
      await io("read", ctx.path, () => fh.read(head, 0, head.length, 0));
      if (decodePagesHeader(head, ctx).epoch !== part.epoch) {
        throw corrupt("binding", "pages header names another epoch", ctx, 16);
      }
      return new PagesFile(fh, ctx, ix);
    } catch (e) {
      await fh.close();
      throw e;
    }
  }

  /** Reads blocks [first, last] into `buf` and returns each block's verified, decoded pages. */
  async readBlocks(first: number, last: number, buf: Buffer): Promise<Buffer[]> {
    const bl = this.ix.blocks;
    const start = bl.offset[first]!;
    const len = bl.offset[last]! + bl.storedBytes[last]! - start;
    let done = 0;
    while (done < len) {
      const { bytesRead } = await io("read", this.ctx.path, () =>
        this.fh.read(buf, done, len - done, start + done),
      );
      if (bytesRead === 0)
        throw corrupt("truncated", "pages file ended inside a block", this.ctx, start + done);
      done += bytesRead;
    }
    const out: Buffer[] = [];
    const ps = this.ix.pageSize;
    for (let b = first; b <= last; b++) {
      const at = bl.offset[b]! - start;
      const stored = buf.subarray(at, at + bl.storedBytes[b]!);
      if (hash64(stored) !== bl.hash[b]) {
        throw corrupt("checksum", `block ${b} checksum mismatch`, this.ctx, bl.offset[b]!);
      }
      const want = bl.pageCount[b]! * ps;
      let pages: Buffer;
      if (bl.codec[b] === CODEC_RAW) pages = stored;
      else if (bl.codec[b] === CODEC_LZ4) pages = uncompressSync(stored);
      else {
        throw new StoreVersionError(
          `${this.ctx.path}: unknown codec ${bl.codec[b]} at offset ${bl.offset[b]}`,
          {
            path: this.ctx.path,
            offset: bl.offset[b]!,
          },
        );
      }
      if (pages.length !== want) {
        throw corrupt(
          "structure",
          `block ${b} decodes to ${pages.length} bytes, not ${want}`,
          this.ctx,
          bl.offset[b]!,
        );
      }
      out.push(pages);
    }
    return out;
  }

  close(): Promise<void> {
    return this.fh.close();
  }
}

/** Where materialised pages go: straight to file offsets, or into a memory window first. */
interface PageTarget {
  /** Starts pages [first, end). */
  begin(first: number, end: number): void;
  add(page: number, buf: Buffer, off: number): void;
  zero(page: number): void;
  /** Called before a read buffer that `add` pointed into is reused. */
  release(): Promise<void>;
  /** Ends the current window. */
  end(): Promise<void>;
  bytesWritten: number;
}

async function writevAll(fh: FileHandle, path: string, iovs: Buffer[], position: number): Promise<number> {
  const want = iovs.reduce((n, b) => n + b.length, 0);
  const { bytesWritten } = await io("write", path, () => fh.writev(iovs, position));
  if (bytesWritten !== want) {
    await io("write", path, () => Promise.reject(Object.assign(new Error("short write"), { code: "EIO" })));
  }
  return want;
}

/** pwrite at page offsets: contiguous pages become one vectored write, nothing is buffered. */
class DirectTarget implements PageTarget {
  #segments: { page: number; iovs: Buffer[] }[] = [];
  #page = -1;
  #next = -1;
  #iovs: Buffer[] = [];
  #buf: Buffer | null = null;
  #from = 0;
  #to = 0;
  #zero: Buffer;
  bytesWritten = 0;

  constructor(
    readonly fh: FileHandle,
    readonly path: string,
    readonly pageSize: number,
  ) {
    this.#zero = Buffer.alloc(pageSize);
  }

  begin(): void {}

  zero(page: number): void {
    this.add(page, this.#zero, 0);
  }

  add(page: number, buf: Buffer, off: number): void {
    const ps = this.pageSize;
    if (page === this.#next && buf === this.#buf && off === this.#to) {
      this.#to += ps;
      this.#next++;
      return;
    }
    if (page === this.#next && this.#iovs.length < MAX_IOVECS) {
      this.#iovs.push(this.#buf!.subarray(this.#from, this.#to));
    } else {
      this.#close();
      this.#page = page;
    }
    this.#buf = buf;
    this.#from = off;
    this.#to = off + ps;
    this.#next = page + 1;
  }

  #close(): void {
    if (this.#buf) {
      this.#iovs.push(this.#buf.subarray(this.#from, this.#to));
      this.#segments.push({ page: this.#page, iovs: this.#iovs });
    }
    this.#iovs = [];
    this.#buf = null;
    this.#next = -1;
  }

  async release(): Promise<void> {
    this.#close();
    for (const s of this.#segments) {
      this.bytesWritten += await writevAll(this.fh, this.path, s.iovs, s.page * this.pageSize);
    }
    this.#segments = [];
  }

  end(): Promise<void> {
    return this.release();
  }
}

const WINDOW_CHUNK = 1 << 20;

/**
 * Assembles a window of guest RAM in memory (page copies are memcpy, not syscalls), then writes it
 * sequentially in large writes, skipping all-zero 1 MiB chunks so the target stays sparse.
 */
class WindowTarget implements PageTarget {
  #win: Buffer;
  #first = 0;
  #end = 0;
  #zeroChunk = Buffer.alloc(WINDOW_CHUNK);
  bytesWritten = 0;

  constructor(
    readonly fh: FileHandle,
    readonly path: string,
    readonly pageSize: number,
    windowPages: number,
  ) {
    // begin() zero-fills each window before use.
    this.#win = Buffer.allocUnsafe(windowPages * pageSize);
  }

  begin(first: number, end: number): void {
    this.#first = first;
    this.#end = end;
    this.#win.fill(0, 0, (end - first) * this.pageSize);
  }

  add(page: number, buf: Buffer, off: number): void {
    buf.copy(this.#win, (page - this.#first) * this.pageSize, off, off + this.pageSize);
  }

  zero(page: number): void {
    const at = (page - this.#first) * this.pageSize;
    this.#win.fill(0, at, at + this.pageSize);
  }

  async release(): Promise<void> {}

  async end(): Promise<void> {
    const len = (this.#end - this.#first) * this.pageSize;
    const base = this.#first * this.pageSize;
    let runStart = -1;
    for (let at = 0; at <= len; at += WINDOW_CHUNK) {
      const n = Math.min(WINDOW_CHUNK, len - at);
      const zero = n === 0 || this.#win.compare(this.#zeroChunk, 0, n, at, at + n) === 0;
      if (!zero && runStart < 0) runStart = at;
      if ((zero || at + n - runStart >= 8 * WINDOW_CHUNK || at + n === len) && runStart >= 0) {
        const stop = zero ? at : at + n;
        this.bytesWritten += await writevAll(
          this.fh,
          this.path,
          [this.#win.subarray(runStart, stop)],
          base + runStart,
        );
        runStart = -1;
      }
    }
  }
}

export interface MaterializeOptions {
  strategy: RestoreStrategy;
  /** Bytes of guest RAM assembled in memory per pass; 0 writes every page straight to its offset. */
  windowBytes: number;
}

export interface MaterializeStats {
  bytesRead: number;
  bytesWritten: number;
}

/**
 * Writes the RAM of the chain's top epoch into `fh`, which must be a new, zero-filled (sparse) file
 * of guestRamBytes. `parts`/`indexes` are newest first, ending in a full part.
 */
export async function materialize(
  parts: readonly Part[],
  indexes: readonly PageIndex[],
  fh: FileHandle,
  path: string,
  opts: MaterializeOptions,
): Promise<MaterializeStats> {
  const top = parts[0]!.manifest;
  const ps = top.pageSize;
  const totalPages = top.guestRamBytes / ps;
  const newest = opts.strategy === "newest-first";
  const winPages =
    opts.windowBytes > 0 ? Math.min(totalPages, Math.max(1, Math.floor(opts.windowBytes / ps))) : 0;
  const target: PageTarget =
    winPages > 0 ? new WindowTarget(fh, path, ps, winPages) : new DirectTarget(fh, path, ps);
  const step = winPages > 0 ? winPages : totalPages;
  const order = newest ? parts.map((_, i) => i) : parts.map((_, i) => parts.length - 1 - i);
  let bytesRead = 0;
  for (let w0 = 0; w0 < totalPages; w0 += step) {
    const w1 = Math.min(totalPages, w0 + step);
    target.begin(w0, w1);
    const filled = newest ? new Uint8Array(w1 - w0) : null;
    for (const k of order) {
      const ix = indexes[k]!;
      const bl = ix.blocks;
      const nb = bl.offset.length;
      const slots = nb === 0 ? 0 : (nb - 1) * ix.pagesPerBlock + bl.pageCount[nb - 1]!;
      const destOfSlot = new Int32Array(slots).fill(-1);
      let needed = 0;
      for (let r = 0; r < ix.runs.length; r += 3) {
        const first = ix.runs[r]!;
        const slot = ix.runs[r + 2]!;
        const lo = Math.max(first, w0);
        const hi = Math.min(first + ix.runs[r + 1]!, w1);
        for (let p = lo; p < hi; p++) {
          if (filled) {
            if (filled[p - w0]) continue;
            filled[p - w0] = 1;
          }
          if (slot === ZERO_RUN) {
            // The target starts zeroed; only oldest-first must overwrite older data with zeroes.
            if (!newest && k !== parts.length - 1) target.zero(p);
          } else {
            destOfSlot[slot + p - first] = p;
            needed++;
          }
        }
      }
      if (needed > 0) bytesRead += await copyNeededBlocks(parts[k]!, ix, destOfSlot, target);
    }
    await target.end();
  }
  return { bytesRead, bytesWritten: target.bytesWritten };
}

function maxStoredBlock(blocks: BlockTable): number {
  let max = 0;
  for (const n of blocks.storedBytes) max = Math.max(max, n);
  return max;
}

/** One read of consecutive blocks: `pages[k]` holds the decoded pages of block `first + k`. */
export interface BlockGroup {
  first: number;
  pages: Buffer[];
  /** Stored bytes read from the file. */
  bytesRead: number;
}

/**
 * Reads the blocks `wanted` selects, in file order; consecutive wanted blocks share one read of up to
 * 8 MiB. Each group is verified before it is yielded. The pages of raw blocks point into a buffer the
 * next group reuses: consume a group before asking for the next.
 */
export async function* readBlockGroups(
  pf: PagesFile,
  wanted: (block: number) => boolean,
): AsyncGenerator<BlockGroup> {
  const bl = pf.ix.blocks;
  const nb = bl.offset.length;
  const buf = Buffer.allocUnsafe(Math.max(READ_BYTES, maxStoredBlock(bl)));
  for (let b = 0; b < nb; b++) {
    if (!wanted(b)) continue;
    let last = b;
    let len = bl.storedBytes[b]!;
    while (last + 1 < nb && wanted(last + 1) && len + bl.storedBytes[last + 1]! <= buf.length) {
      last++;
      len += bl.storedBytes[last]!;
    }
    yield { first: b, pages: await pf.readBlocks(b, last, buf), bytesRead: len };
    b = last;
  }
}

async function copyNeededBlocks(
  part: Part,
  ix: PageIndex,
  destOfSlot: Int32Array,
  sink: PageTarget,
): Promise<number> {
  const bl = ix.blocks;
  const ppb = ix.pagesPerBlock;
  const ps = ix.pageSize;
  const blockNeeded = (b: number): boolean => {
    for (let s = b * ppb, end = s + bl.pageCount[b]!; s < end; s++) if (destOfSlot[s]! >= 0) return true;
    return false;
  };
  const pf = await PagesFile.open(part, ix);
  let bytesRead = 0;
  try {
    for await (const group of readBlockGroups(pf, blockNeeded)) {
      bytesRead += group.bytesRead;
      group.pages.forEach((pages, k) => {
        const i = group.first + k;
        for (let j = 0, n = bl.pageCount[i]!; j < n; j++) {
          const dest = destOfSlot[i * ppb + j]!;
          if (dest >= 0) sink.add(dest, pages, j * ps);
        }
      });
      // The read buffer is reused for the next group: write out what points into it first.
      await sink.release();
    }
  } finally {
    await pf.close();
  }
  return bytesRead;
}

/** Content of one page at the chain's top epoch. Reads at most one block of one part. */
export async function readPageFrom(
  parts: readonly Part[],
  indexes: readonly PageIndex[],
  page: number,
  pagesFile: (k: number) => Promise<PagesFile>,
): Promise<Buffer> {
  for (let k = 0; k < parts.length; k++) {
    const ix = indexes[k]!;
    const r = findRun(ix.runs, page);
    if (r < 0) {
      if (ix.full) break;
      continue;
    }
    const slot0 = ix.runs[r * 3 + 2]!;
    if (slot0 === ZERO_RUN) break;
    const slot = slot0 + (page - ix.runs[r * 3]!);
    const b = Math.floor(slot / ix.pagesPerBlock);
    const pf = await pagesFile(k);
    const [pages] = await pf.readBlocks(b, b, Buffer.allocUnsafe(ix.blocks.storedBytes[b]!));
    const at = (slot - b * ix.pagesPerBlock) * ix.pageSize;
    return Buffer.from(pages!.subarray(at, at + ix.pageSize));
  }
  return Buffer.alloc(parts[0]!.manifest.pageSize);
}

/** Hashes every file of a part in full against its manifest (what a receiving host runs). */
export async function verifyPart(part: Part): Promise<number> {
  const ix = await loadIndex(part);
  await readBlobPayload(part, "devstate");
  await readBlobPayload(part, "chanlog");
  const ref = fileRef(part, "pages");
  const pf = await PagesFile.open(part, ix);
  try {
    // Per-block hashes first, so a flipped byte is reported at its block's offset; then the whole
    // file against the manifest (which also covers bytes no block holds, such as dead slots).
    const buf = Buffer.allocUnsafe(Math.max(READ_BYTES, maxStoredBlock(ix.blocks)));
    const bl = ix.blocks;
    for (let b = 0; b < bl.offset.length; ) {
      let last = b;
      let len = bl.storedBytes[b]!;
      while (last + 1 < bl.offset.length && len + bl.storedBytes[last + 1]! <= buf.length)
        len += bl.storedBytes[++last]!;
      await pf.readBlocks(b, last, buf);
      b = last + 1;
    }
    const h = new Xxh64();
    for (let pos = 0; pos < ref.bytes; ) {
      const { bytesRead } = await io("read", pf.ctx.path, () => pf.fh.read(buf, 0, buf.length, pos));
      if (bytesRead === 0) throw corrupt("truncated", "pages file ended early", pf.ctx, pos);
      h.update(buf.subarray(0, bytesRead));
      pos += bytesRead;
    }
    if (h.digest() !== ref.hash)
      throw corrupt("checksum", "pages checksum differs from the manifest", pf.ctx, 0);
  } finally {
    await pf.close();
  }
  return part.manifest.files.reduce((s, f) => s + f.bytes, 0);
}
