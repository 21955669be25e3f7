/**
 * EpochWriter: streams one VM's pages of one epoch into a temp part directory and publishes it
 * atomically on commit (FORMAT.md §4).
 */
import { read as fsRead } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import { mkdir, open, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { Xxh64 } from "@node-rs/xxhash";
import { compressSync } from "lz4-napi";
import { StoreArgumentError, StoreError, StoreIoError, StoreStateError } from "../errors.js";
import {
  type BlockTable,
  CODEC_LZ4,
  CODEC_RAW,
  encodeBlob,
  encodeIndex,
  encodePagesHeader,
  encodeVmManifest,
  type FileRef,
  HEADER_BYTES,
  hash64,
  type VmManifest,
} from "./format.js";
import { fsyncDir, io, publish, writeWhole } from "./fsio.js";
import { buildRuns, MAX_SLOTS, SLOT_UNSET, SLOT_ZERO } from "./pagemap.js";
import { PagesFile, readBlockGroups } from "./reader.js";

export type Compression = "none" | "lz4";

/** Everything a writer needs from the store; the store owns naming and the publish rules. */
export interface WriterPlan extends Omit<VmManifest, "createdAtMs" | "files"> {
  pagesPerBlock: number;
  compression: Compression;
  fsync: boolean;
  /** Parent directory of both names (vms/<vm>/). */
  vmDir: string;
  tempDir: string;
  finalDir: string;
  /** Makes room for finalDir (an uncommitted part of the same name is replaced). */
  beforePublish: () => Promise<void>;
  /** Called once the writer is done, whatever the outcome. */
  onSettled: () => void;
}

export interface EpochCommitInfo {
  vmId: string;
  epoch: number;
  full: boolean;
  /** Pages whose data is stored (after zero elision). */
  pagesStored: number;
  /** Pages recorded as zero. */
  zeroPages: number;
  /** Bytes of all files of the part. */
  bytes: number;
  durationMs: number;
}

type WriterState = "open" | "committing" | "committed" | "aborted" | "failed";

/** Bytes of pages gathered before one large write (rounded to whole blocks). */
const STAGING_BYTES = 8 << 20;

/** Marks a dead slot in the slot → page table that commit builds (no page keeps that copy). */
const NO_PAGE = 0xffff_ffff;

/** The blocks written so far, one entry per block (turned into a BlockTable for the index). */
interface BlockList {
  offset: number[];
  storedBytes: number[];
  pageCount: number[];
  codec: number[];
  hash: bigint[];
}

const emptyBlockList = (): BlockList => ({ offset: [], storedBytes: [], pageCount: [], codec: [], hash: [] });

export class EpochWriter {
  readonly vmId: string;
  readonly epoch: number;
  readonly full: boolean;
  readonly parentEpoch: number | null;
  readonly guestRamBytes: number;
  readonly pageSize: number;

  #plan: WriterPlan;
  #state: WriterState = "open";
  #slotOf: Uint32Array;
  #zeroPage: Buffer;
  #bufs: [Buffer, Buffer];
  #cur = 0;
  #staged = 0;
  #slotsFlushed = 0;
  /**
   * Slots no page points at any more: the earlier copy of a page written again after that copy was
   * flushed, or of a page written again as zero. Commit drops them.
   */
  #deadSlots = 0;
  #capacity: number;
  #blocks = emptyBlockList();
  #dataOffset: number = HEADER_BYTES.PAGE;
  #fileHash = new Xxh64();
  #inflight: Promise<void> | null = null;
  #writeFailure: unknown = null;
  #fh: FileHandle;
  #pagesPath: string;
  #devstate: Uint8Array = new Uint8Array(0);
  #chanlog: Uint8Array = new Uint8Array(0);
  #started = performance.now();

  private constructor(plan: WriterPlan, fh: FileHandle, pagesPath: string) {
    this.#plan = plan;
    this.vmId = plan.vmId;
    this.epoch = plan.epoch;
    this.full = plan.full;
    this.parentEpoch = plan.parentEpoch;
    this.guestRamBytes = plan.guestRamBytes;
    this.pageSize = plan.pageSize;
    this.#fh = fh;
    this.#pagesPath = pagesPath;
    const pages = plan.guestRamBytes / plan.pageSize;
    this.#slotOf = new Uint32Array(pages).fill(SLOT_UNSET);
    this.#zeroPage = Buffer.alloc(plan.pageSize);
    const ppb = plan.pagesPerBlock;
    this.#capacity = Math.max(ppb, Math.floor(STAGING_BYTES / plan.pageSize / ppb) * ppb);
    this.#bufs = [
      Buffer.allocUnsafe(this.#capacity * plan.pageSize),
      Buffer.allocUnsafe(this.#capacity * plan.pageSize),
    ];
  }

  /** @internal Used by CheckpointStore.beginEpoch. */
  static async create(plan: WriterPlan): Promise<EpochWriter> {
    await io("mkdir", plan.tempDir, () => mkdir(plan.tempDir));
    const pagesPath = join(plan.tempDir, "pages");
    // Read back too: commit copies the live slots out when pages were written again.
    const fh = await io("open", pagesPath, () => open(pagesPath, "wx+"));
    const w = new EpochWriter(plan, fh, pagesPath);
    w.#writeHeader();
    return w;
  }

  /** Starts the pages file: the header is the first thing hashed and written. */
  #writeHeader(): void {
    const header = encodePagesHeader(this.epoch);
    this.#fileHash.update(header);
    this.#inflight = this.#track(this.#fh.write(header, 0, header.length, 0).then(() => undefined));
  }

  get state(): WriterState {
    return this.#state;
  }

  /**
   * Adds pages. `data` holds the pages concatenated in the order of `pageNumbers`. Pages may come in
   * any order and repeat; the last write of a page wins and the part stores one copy of each page (a
   * copy still in the staging buffer is overwritten there; one already on disk is dropped by
   * `commit`). Zero pages are recorded without data.
   */
  async writePages(pageNumbers: Uint32Array | readonly number[], data: Uint8Array): Promise<void> {
    this.#requireOpen("writePages");
    const ps = this.pageSize;
    const n = pageNumbers.length;
    if (data.length !== n * ps) {
      throw this.#argError(`writePages: ${n} pages need ${n * ps} bytes of data, got ${data.length}`);
    }
    const src = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    const slotOf = this.#slotOf;
    const total = slotOf.length;
    let i = 0;
    while (i < n) {
      // Gather a stretch of non-zero pages that take new slots and fit the staging buffer; copy it in one go.
      const room = this.#capacity - this.#staged;
      const start = i;
      const flushed = this.#slotsFlushed;
      let slot = flushed + this.#staged;
      let stoppedAt: "zero" | "staged" | undefined;
      while (i < n && i - start < room) {
        const p = pageNumbers[i]!;
        if (!Number.isInteger(p) || p < 0 || p >= total) {
          throw this.#argError(`page number ${p} is outside guest RAM of ${total} pages`);
        }
        if (src.compare(this.#zeroPage, 0, ps, i * ps, (i + 1) * ps) === 0) {
          stoppedAt = "zero";
          break;
        }
        const earlier = slotOf[p]!;
        if (earlier >= flushed && earlier < MAX_SLOTS) {
          stoppedAt = "staged";
          break;
        }
        if (slot >= MAX_SLOTS) throw this.#argError("too many pages written to one epoch");
        if (earlier < MAX_SLOTS) this.#deadSlots++;
        slotOf[p] = slot++;
        i++;
      }
      if (i > start) {
        src.copy(this.#bufs[this.#cur]!, this.#staged * ps, start * ps, i * ps);
        this.#staged += i - start;
        if (this.#staged === this.#capacity) await this.#flush(false);
      }
      if (stoppedAt === "zero") {
        const p = pageNumbers[i]!;
        if (slotOf[p]! < MAX_SLOTS) this.#deadSlots++;
        slotOf[p] = SLOT_ZERO;
        i++;
      } else if (stoppedAt === "staged") {
        // Overwrite the staged copy, unless the flush above took it to disk: then the next pass
        // gives the page a new slot.
        const staged = slotOf[pageNumbers[i]!]! - this.#slotsFlushed;
        if (staged >= 0) {
          src.copy(this.#bufs[this.#cur]!, staged * ps, i * ps, (i + 1) * ps);
          i++;
        }
      }
    }
  }

  /**
   * Copies `count` pages starting at `firstPage` from a whole-RAM source: a buffer holding guest RAM
   * from page 0, or an open file (FileHandle or fd) such as the guest's memory-backend file.
   */
  async writeRange(
    source: Uint8Array | FileHandle | number,
    firstPage: number,
    count: number,
  ): Promise<void> {
    this.#requireOpen("writeRange");
    const ps = this.pageSize;
    const total = this.#slotOf.length;
    if (!Number.isInteger(firstPage) || !Number.isInteger(count) || firstPage < 0 || count < 0) {
      throw this.#argError(`writeRange: bad range ${firstPage}+${count}`);
    }
    if (firstPage + count > total)
      throw this.#argError(`writeRange: ${firstPage}+${count} exceeds ${total} pages`);
    const chunkPages = this.#capacity;
    const scratch = source instanceof Uint8Array ? null : Buffer.allocUnsafe(chunkPages * ps);
    for (let done = 0; done < count; ) {
      const n = Math.min(chunkPages, count - done);
      const first = firstPage + done;
      const numbers = new Uint32Array(n);
      for (let k = 0; k < n; k++) numbers[k] = first + k;
      let data: Uint8Array;
      if (source instanceof Uint8Array) {
        if (source.length < (first + n) * ps) throw this.#argError("writeRange: source buffer is too short");
        data = source.subarray(first * ps, (first + n) * ps);
      } else {
        data = await this.#readSource(source, scratch!, n * ps, first * ps);
      }
      await this.writePages(numbers, data);
      done += n;
    }
  }

  /** Device state of this epoch (opaque; QEMU's migration stream without RAM). */
  setDeviceState(buf: Uint8Array): void {
    this.#requireOpen("setDeviceState");
    this.#devstate = buf;
  }

  /** Channel log of this epoch (opaque; defined by the virtual network). */
  setChannelLog(buf: Uint8Array): void {
    this.#requireOpen("setChannelLog");
    this.#chanlog = buf;
  }

  /**
   * Makes the part durable: flushes pages, writes index, blobs and manifest, fsyncs files and the
   * directory, renames the temp directory to its final name and fsyncs the parent. Resolves only
   * once all of that is done. On failure the temp directory is removed and the writer is unusable.
   */
  async commit(): Promise<EpochCommitInfo> {
    this.#requireOpen("commit");
    this.#state = "committing";
    const p = this.#plan;
    try {
      await this.#flush(true);
      if (this.#deadSlots > 0) await this.#dropDeadSlots();
      const runs = buildRuns(this.#slotOf, p.full);
      let zeroPages = 0;
      for (let r = 0; r < runs.length; r += 3) if (runs[r + 2] === 0xffff_ffff) zeroPages += runs[r + 1]!;
      const index = encodeIndex({
        epoch: p.epoch,
        guestRamBytes: p.guestRamBytes,
        pageSize: p.pageSize,
        pagesPerBlock: p.pagesPerBlock,
        full: p.full,
        pagesFileBytes: this.#dataOffset,
        blocks: this.#blockTable(),
        runs,
      });
      if (p.fsync) await io("fsync", this.#pagesPath, () => this.#fh.sync());
      await io("close", this.#pagesPath, () => this.#fh.close());
      const devstate = encodeBlob("DEVS", p.epoch, this.#devstate);
      const chanlog = encodeBlob("CHAN", p.epoch, this.#chanlog);
      const files: FileRef[] = [
        { name: "index", bytes: index.length, hash: hash64(index) },
        { name: "pages", bytes: this.#dataOffset, hash: this.#fileHash.digest() },
        { name: "devstate", bytes: devstate.length, hash: hash64(devstate) },
        { name: "chanlog", bytes: chanlog.length, hash: hash64(chanlog) },
      ];
      await writeWhole(join(p.tempDir, "index"), index, p.fsync);
      await writeWhole(join(p.tempDir, "devstate"), devstate, p.fsync);
      await writeWhole(join(p.tempDir, "chanlog"), chanlog, p.fsync);
      const manifest = encodeVmManifest({
        vmId: p.vmId,
        epoch: p.epoch,
        full: p.full,
        compacted: p.compacted,
        parentEpoch: p.parentEpoch,
        parentManifestHash: p.parentManifestHash,
        supersedesHash: p.supersedesHash,
        guestRamBytes: p.guestRamBytes,
        pageSize: p.pageSize,
        createdAtMs: Date.now(),
        files,
      });
      await writeWhole(join(p.tempDir, "manifest"), manifest, p.fsync);
      if (p.fsync) await fsyncDir(p.tempDir);
      await p.beforePublish();
      await publish(p.tempDir, p.finalDir, p.vmDir, p.fsync);
      this.#state = "committed";
      p.onSettled();
      return {
        vmId: p.vmId,
        epoch: p.epoch,
        full: p.full,
        pagesStored: this.#slotsFlushed,
        zeroPages,
        bytes: files.reduce((s, f) => s + f.bytes, 0) + manifest.length,
        durationMs: performance.now() - this.#started,
      };
    } catch (e) {
      this.#state = "failed";
      await this.#discard();
      throw e;
    }
  }

  /** Drops everything written so far. Safe to call in any state; a no-op after commit. */
  async abort(): Promise<void> {
    if (this.#state === "committed" || this.#state === "aborted") return;
    this.#state = "aborted";
    await this.#discard();
  }

  async #discard(): Promise<void> {
    await this.#inflight;
    await this.#fh.close().catch(() => undefined);
    await rm(this.#plan.tempDir, { recursive: true, force: true }).catch(() => undefined);
    this.#plan.onSettled();
  }

  #blockTable(): BlockTable {
    const b = this.#blocks;
    return {
      offset: Float64Array.from(b.offset),
      storedBytes: Uint32Array.from(b.storedBytes),
      pageCount: Uint16Array.from(b.pageCount),
      codec: Uint8Array.from(b.codec),
      hash: BigUint64Array.from(b.hash),
    };
  }

  /**
   * Rewrites the pages file with only its live slots, the last copy of each page, in their old
   * order: the part then stores one copy per page. Needed when pages were written again (or as zero)
   * after their earlier copy had left the staging buffer (precopy's live rounds). The new file is
   * written beside the old one in the temp directory and renamed over it, so the commit protocol is
   * unchanged; every block read back is checked against the hash taken when it was written.
   * Precondition: everything flushed (`#flush(true)`).
   */
  async #dropDeadSlots(): Promise<void> {
    const ps = this.pageSize;
    const ppb = this.#plan.pagesPerBlock;
    const slotOf = this.#slotOf;
    const pageOfSlot = new Uint32Array(this.#slotsFlushed).fill(NO_PAGE);
    for (let p = 0; p < slotOf.length; p++) if (slotOf[p]! < MAX_SLOTS) pageOfSlot[slotOf[p]!] = p;
    const blocks = this.#blocks;
    const hasLiveSlot = (b: number): boolean => {
      for (let s = b * ppb, end = s + blocks.pageCount[b]!; s < end; s++)
        if (pageOfSlot[s] !== NO_PAGE) return true;
      return false;
    };
    const ctx = { path: this.#pagesPath, vmId: this.vmId, epoch: this.epoch };
    const old = PagesFile.ofWriter(this.#fh, ctx, { blocks: this.#blockTable(), pageSize: ps });
    const livePath = join(this.#plan.tempDir, "pages.live");
    const fh = await io("open", livePath, () => open(livePath, "wx"));
    this.#fh = fh;
    this.#pagesPath = livePath;
    this.#blocks = emptyBlockList();
    this.#dataOffset = HEADER_BYTES.PAGE;
    this.#fileHash = new Xxh64();
    this.#slotsFlushed = 0;
    try {
      this.#writeHeader();
      for await (const group of readBlockGroups(old, hasLiveSlot)) {
        for (let k = 0; k < group.pages.length; k++) {
          const pages = group.pages[k]!;
          const firstSlot = (group.first + k) * ppb;
          for (let j = 0, n = blocks.pageCount[group.first + k]!; j < n; j++) {
            const page = pageOfSlot[firstSlot + j]!;
            if (page === NO_PAGE) continue;
            slotOf[page] = this.#slotsFlushed + this.#staged;
            pages.copy(this.#bufs[this.#cur]!, this.#staged * ps, j * ps, (j + 1) * ps);
            if (++this.#staged === this.#capacity) await this.#flush(false);
          }
        }
      }
      await this.#flush(true);
    } catch (e) {
      await old.close().catch(() => undefined);
      throw e;
    }
    await io("close", ctx.path, () => old.close());
    await io("rename", livePath, () => rename(livePath, ctx.path));
    this.#pagesPath = ctx.path;
    this.#deadSlots = 0;
  }

  /** Writes the staged whole blocks (all staged pages when final) as one vectored write. */
  async #flush(final: boolean): Promise<void> {
    const ps = this.pageSize;
    const ppb = this.#plan.pagesPerBlock;
    const movedPages = final ? this.#staged : Math.floor(this.#staged / ppb) * ppb;
    const buf = this.#bufs[this.#cur]!;
    const out: Buffer[] = [];
    const position = this.#dataOffset;
    let rawStart = -1; // start (in buf) of the current stretch of raw blocks, merged into one iovec
    let rawEnd = -1;
    for (let first = 0; first < movedPages; first += ppb) {
      const pages = Math.min(ppb, movedPages - first);
      const raw = buf.subarray(first * ps, (first + pages) * ps);
      let stored: Buffer = raw;
      let codec = CODEC_RAW;
      if (this.#plan.compression === "lz4") {
        const c = compressSync(raw);
        if (c.length < raw.length) {
          stored = c;
          codec = CODEC_LZ4;
        }
      }
      const blocks = this.#blocks;
      blocks.offset.push(this.#dataOffset);
      blocks.storedBytes.push(stored.length);
      blocks.pageCount.push(pages);
      blocks.codec.push(codec);
      blocks.hash.push(hash64(stored));
      this.#fileHash.update(stored);
      this.#dataOffset += stored.length;
      if (codec === CODEC_RAW && rawEnd === first * ps) {
        rawEnd += raw.length;
      } else {
        if (rawStart >= 0) out.push(buf.subarray(rawStart, rawEnd));
        rawStart = -1;
        rawEnd = -1;
        if (codec === CODEC_RAW) {
          rawStart = first * ps;
          rawEnd = rawStart + raw.length;
        } else {
          out.push(stored);
        }
      }
    }
    if (rawStart >= 0) out.push(buf.subarray(rawStart, rawEnd));
    // The other buffer may still be under an earlier write: wait before reusing it.
    await this.#settleInflight();
    if (out.length > 0) this.#inflight = this.#track(this.#writevAll(out, position));
    const left = this.#staged - movedPages;
    const next = this.#bufs[this.#cur ^ 1]!;
    if (left > 0) buf.copy(next, 0, movedPages * ps, this.#staged * ps);
    this.#cur ^= 1;
    this.#staged = left;
    this.#slotsFlushed += movedPages;
    if (final) await this.#settleInflight();
  }

  async #writevAll(bufs: Buffer[], position: number): Promise<void> {
    let pos = position;
    for (let i = 0; i < bufs.length; i += 512) {
      const part = bufs.slice(i, i + 512);
      const want = part.reduce((s, b) => s + b.length, 0);
      const { bytesWritten } = await this.#fh.writev(part, pos);
      if (bytesWritten !== want) {
        // Regular files only write short on errors such as ENOSPC; finish the rest plainly.
        const rest = Buffer.concat(part).subarray(bytesWritten);
        let done = 0;
        while (done < rest.length) {
          const r = await this.#fh.write(rest, done, rest.length - done, pos + bytesWritten + done);
          if (r.bytesWritten <= 0)
            throw new StoreIoError("short write", { op: "write", path: this.#pagesPath });
          done += r.bytesWritten;
        }
      }
      pos += want;
    }
  }

  #track(p: Promise<void>): Promise<void> {
    return p.catch((e: unknown) => {
      this.#writeFailure ??= e;
    });
  }

  async #settleInflight(): Promise<void> {
    if (this.#inflight) await this.#inflight;
    this.#inflight = null;
    if (this.#writeFailure !== null) {
      const cause = this.#writeFailure;
      this.#state = "failed";
      if (StoreError.isInstance(cause)) throw cause;
      throw new StoreIoError(`write ${this.#pagesPath} failed`, {
        op: "write",
        path: this.#pagesPath,
        vmId: this.vmId,
        epoch: this.epoch,
        cause,
      });
    }
  }

  async #readSource(
    src: FileHandle | number,
    scratch: Buffer,
    len: number,
    position: number,
  ): Promise<Buffer> {
    const path = typeof src === "number" ? `fd ${src}` : `fd ${src.fd}`;
    let done = 0;
    while (done < len) {
      const n = await io("read", path, async () => {
        if (typeof src === "number") {
          return await new Promise<number>((res, rej) =>
            fsRead(src, scratch, done, len - done, position + done, (err, got) =>
              err ? rej(err) : res(got),
            ),
          );
        }
        return (await src.read(scratch, done, len - done, position + done)).bytesRead;
      });
      if (n === 0) throw this.#argError(`writeRange: source ended at byte ${position + done}`);
      done += n;
    }
    return scratch.subarray(0, len);
  }

  #requireOpen(op: string): void {
    if (this.#state !== "open") {
      throw new StoreStateError(`${op}: writer for ${this.vmId} epoch ${this.epoch} is ${this.#state}`, {
        op,
        vmId: this.vmId,
        epoch: this.epoch,
        state: this.#state,
        required: "open",
      });
    }
  }

  #argError(msg: string): StoreArgumentError {
    return new StoreArgumentError(msg, { vmId: this.vmId, epoch: this.epoch });
  }
}
