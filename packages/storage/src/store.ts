/**
 * CheckpointStore: the directory of FORMAT.md — per-VM chains of parts, global epoch manifests as the
 * commit point, restore, compaction, retention and garbage collection.
 */
import { type FileHandle, mkdir, open, readdir, readFile, rename, rmdir, unlink } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import {
  StoreArgumentError,
  StoreChainError,
  StoreCorruptionError,
  StoreError,
  StoreLockedError,
  StoreNotFoundError,
  StoreStateError,
} from "./errors.js";
import {
  decodeGlobalManifest,
  decodeStoreMarker,
  decodeVmManifest,
  encodeGlobalManifest,
  encodeStoreMarker,
  FORMAT_MAJOR,
  FORMAT_MINOR,
  type GlobalManifest,
  hash64,
  type PageIndex,
  validPageSize,
} from "./internal/format.js";
import {
  fsyncDir,
  io,
  isEnoent,
  publish,
  readIfExists,
  removeTree,
  unlinkIfExists,
  writeWhole,
} from "./internal/fsio.js";
import {
  checkEpoch,
  checkVmId,
  EPOCHS_DIR,
  globalName,
  LOCK_FILE,
  type PartKind,
  parseGlobalName,
  parsePartName,
  partName,
  STORE_FILE,
  TEMP_PREFIX,
  TMP_DIR,
  tempName,
  VMS_DIR,
} from "./internal/layout.js";
import { locatePages, type RamLocation } from "./internal/locate.js";
import { MAX_SLOTS } from "./internal/pagemap.js";
import {
  loadIndex,
  materialize,
  PagesFile,
  type Part,
  type RestoreStrategy,
  readBlobPayload,
  readPageFrom,
  verifyPart,
} from "./internal/reader.js";
import { type Compression, EpochWriter, type WriterPlan } from "./internal/writer.js";

export interface OpenOptions {
  /** Create the store when `dir` does not hold one (the directory must then be empty or absent). */
  create?: boolean;
  /** Read only: no lock, no clean-up, no writes. */
  readOnly?: boolean;
  /** Per-block compression of page data; a block is stored raw when LZ4 does not make it smaller. */
  compression?: Compression;
  /** fsync files and directories on commit (default true). Off only for tests and scratch stores. */
  fsync?: boolean;
  /** Pages per checksummed block (default 16): the unit a lazy single-page read fetches. */
  pagesPerBlock?: number;
}

export interface BeginEpochOptions {
  guestRamBytes: number;
  /** Default 4096. */
  pageSize?: number;
  /** true: a full image (pages not written are zero); false: an increment over `parentEpoch`. */
  full: boolean;
  /** Default: the newest globally committed epoch below this one that includes the VM. */
  parentEpoch?: number;
}

export interface RestoreOptions {
  /** Default "newest-first" (each page written once; shadowed blocks not read). */
  strategy?: RestoreStrategy;
  /** fsync the restored file before renaming it into place (default false). */
  fsync?: boolean;
  /**
   * Guest RAM assembled in memory per pass (default 256 MiB, capped at the guest's RAM): pages are
   * copied in memory and written out sequentially; every pass reads the increments again. 0 writes
   * each page straight to its file offset instead (no buffer, many small writes).
   */
  windowBytes?: number;
}

export interface RestoreResult {
  vmId: string;
  epoch: number;
  bytes: number;
  bytesRead: number;
  bytesWritten: number;
  chainLength: number;
  durationMs: number;
}

export interface EpochInfo {
  epoch: number;
  createdAtMs: number;
  vmIds: string[];
}

export interface PartInfo {
  name: string;
  /** The part's directory (absolute). */
  dir: string;
  epoch: number;
  kind: "full" | "increment" | "base";
  parentEpoch: number | null;
  /** Sum of the part's files, as its manifest records them. */
  bytes: number;
  /** Each file the manifest lists (index, pages, devstate, chanlog) with its recorded length. */
  files: { name: string; bytes: number }[];
}

export interface StoreInfo {
  dir: string;
  formatVersion: string;
  epochs: EpochInfo[];
  vms: { vmId: string; parts: PartInfo[] }[];
  bytes: number;
  problems: { path: string; code: string; message: string }[];
}

export interface CompactResult {
  epoch: number;
  compacted: string[];
  removedEpochs: number[];
  removed: string[];
}

export interface VerifyResult {
  epochs: number[];
  parts: number;
  bytes: number;
}

/** One failed check of `verifyEach`: the error's code, the file and offset it names, and its message. */
export interface StoreProblem {
  code: string;
  path: string;
  offset?: number;
  vmId?: string;
  epoch?: number;
  message: string;
}

/** A newer epoch `newestEpoch` passed over: the file that made it unusable and why. */
export interface SkippedEpoch {
  epoch: number;
  /** The global manifest that failed its check, or the part left without one. */
  path: string;
  reason: string;
}

/** The epoch a restore without an explicit epoch uses, and every newer one it passed over. */
export interface NewestEpoch {
  epoch: number;
  /** Newest first. Empty when `epoch` is the newest epoch anything was written for. */
  skipped: SkippedEpoch[];
}

export interface VerifyEachResult extends VerifyResult {
  /** Empty when every checksum matched. */
  problems: StoreProblem[];
}

/** Which parts `gc`/`compact` remove; with `dryRun` nothing is changed and the result says what would be. */
export interface CleanOptions {
  dryRun?: boolean;
}

const DEFAULT_PAGES_PER_BLOCK = 16;

function problemOf(e: unknown, path: string): StoreProblem {
  if (!StoreError.isInstance(e)) throw e;
  return {
    code: e.code,
    path: e.path ?? path,
    ...(e.offset === undefined ? {} : { offset: e.offset }),
    ...(e.vmId === undefined ? {} : { vmId: e.vmId }),
    ...(e.epoch === undefined ? {} : { epoch: e.epoch }),
    message: e.message,
  };
}

function describePart(name: string, part: Part): PartInfo {
  const m = part.manifest;
  return {
    name,
    dir: part.dir,
    epoch: part.epoch,
    kind: m.compacted ? "base" : m.full ? "full" : "increment",
    parentEpoch: m.parentEpoch,
    bytes: m.files.reduce((s, f) => s + f.bytes, 0),
    files: m.files.map((f) => ({ name: f.name, bytes: f.bytes })),
  };
}
const DEFAULT_WINDOW_BYTES = 256 << 20;

export class CheckpointStore {
  readonly dir: string;
  readonly readOnly: boolean;
  #compression: Compression;
  #fsync: boolean;
  #pagesPerBlock: number;
  #closed = false;
  #writers = new Map<string, EpochWriter>();
  #activeTemps = new Set<string>();
  #indexCache = new Map<string, PageIndex>();
  #chainCache = new Map<string, Part[]>();
  #pagesFiles = new Map<string, PagesFile>();
  #queue: Promise<unknown> = Promise.resolve();
  #removedAtOpen: string[] = [];

  private constructor(dir: string, opts: OpenOptions) {
    this.dir = dir;
    this.readOnly = opts.readOnly ?? false;
    this.#compression = opts.compression ?? "none";
    this.#fsync = opts.fsync ?? true;
    this.#pagesPerBlock = opts.pagesPerBlock ?? DEFAULT_PAGES_PER_BLOCK;
  }

  /**
   * Opens (or with `create`, creates) a store. A writable open takes the store's lock and removes
   * uncommitted leftovers of earlier processes: temp files and parts newer than the newest global epoch.
   */
  static async open(dir: string, opts: OpenOptions = {}): Promise<CheckpointStore> {
    const abs = resolve(dir);
    if (opts.compression !== undefined && opts.compression !== "none" && opts.compression !== "lz4") {
      throw new StoreArgumentError(`unknown compression ${String(opts.compression)}`);
    }
    const ppb = opts.pagesPerBlock ?? DEFAULT_PAGES_PER_BLOCK;
    if (!Number.isInteger(ppb) || ppb < 1 || ppb > 0xffff) {
      throw new StoreArgumentError(`pagesPerBlock ${ppb} must be 1..65535`);
    }
    const markerPath = join(abs, STORE_FILE);
    let marker = await readIfExists(markerPath);
    if (marker === undefined) {
      if (!opts.create || opts.readOnly) {
        const entries = await readdir(abs).catch(() => [] as string[]);
        if (entries.includes(EPOCHS_DIR) || entries.includes(VMS_DIR)) {
          throw new StoreNotFoundError(
            `${markerPath} does not exist: ${abs} holds ${EPOCHS_DIR}/ and ${VMS_DIR}/ of a store but no store marker`,
            { path: markerPath },
          );
        }
        throw new StoreNotFoundError(`${abs} is not a checkpoint store`, { path: abs });
      }
      await io("mkdir", abs, () => mkdir(abs, { recursive: true }));
      const entries = await io("readdir", abs, () => readdir(abs));
      if (entries.length > 0) {
        throw new StoreArgumentError(`${abs} is not empty and holds no store`, { path: abs });
      }
      marker = encodeStoreMarker({ createdAtMs: Date.now() });
      const tmp = join(abs, tempName("STORE"));
      await writeWhole(tmp, marker, opts.fsync ?? true);
      await publish(tmp, markerPath, abs, opts.fsync ?? true);
    }
    decodeStoreMarker(marker, { path: markerPath });
    const store = new CheckpointStore(abs, opts);
    if (!store.readOnly) {
      for (const d of [EPOCHS_DIR, VMS_DIR, TMP_DIR]) {
        await io("mkdir", join(abs, d), () => mkdir(join(abs, d), { recursive: true }));
      }
      await store.#lock();
      try {
        store.#removedAtOpen = await store.#gc(true);
      } catch (e) {
        await store.#unlock();
        throw e;
      }
    }
    return store;
  }

  /** Aborts open writers and releases the lock. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const w of [...this.#writers.values()]) await w.abort();
    await this.#queue;
    await this.#dropReadCaches();
    if (!this.readOnly) await this.#unlock();
  }

  // ------------------------------------------------------------------ writing

  /** Starts writing VM `vmId`'s part of `epoch`. The epoch must be newer than every committed one. */
  async beginEpoch(vmId: string, epoch: number, opts: BeginEpochOptions): Promise<EpochWriter> {
    this.#requireWritable("beginEpoch");
    checkVmId(vmId);
    checkEpoch(epoch, vmId);
    const pageSize = opts.pageSize ?? 4096;
    const ram = opts.guestRamBytes;
    if (!validPageSize(pageSize))
      throw new StoreArgumentError(`page size ${pageSize} is not a power of two 512..1M`);
    if (!Number.isSafeInteger(ram) || ram <= 0 || ram % pageSize !== 0 || ram / pageSize > MAX_SLOTS) {
      throw new StoreArgumentError(`guestRamBytes ${ram} must be a positive multiple of ${pageSize}`, {
        vmId,
        epoch,
      });
    }
    const newest = (await this.#globalEpochs()).at(-1) ?? -1;
    if (epoch <= newest) {
      throw new StoreStateError(`epoch ${epoch} is not newer than committed epoch ${newest}`, {
        op: "beginEpoch",
        vmId,
        epoch,
        state: `newest ${newest}`,
        required: `epoch > ${newest}`,
      });
    }
    const key = `${vmId}/${epoch}`;
    if (this.#writers.has(key)) {
      throw new StoreStateError(`a writer for ${key} is already open`, {
        op: "beginEpoch",
        vmId,
        epoch,
        state: "writing",
        required: "idle",
      });
    }
    let parentEpoch: number | null = null;
    let parentManifestHash = 0n;
    if (!opts.full) {
      const parent = await this.#findParent(vmId, epoch, opts.parentEpoch);
      if (parent.manifest.guestRamBytes !== ram || parent.manifest.pageSize !== pageSize) {
        throw new StoreArgumentError(
          `parent epoch ${parent.epoch} has ${parent.manifest.guestRamBytes} bytes in pages of ${parent.manifest.pageSize}`,
          { vmId, epoch },
        );
      }
      parentEpoch = parent.epoch;
      parentManifestHash = parent.manifestHash;
    }
    return this.#newWriter(key, {
      vmId,
      epoch,
      full: opts.full,
      compacted: false,
      parentEpoch,
      parentManifestHash,
      supersedesHash: 0n,
      guestRamBytes: ram,
      pageSize,
      kind: "e",
    });
  }

  async #newWriter(
    key: string,
    p: Omit<
      WriterPlan,
      | "pagesPerBlock"
      | "compression"
      | "fsync"
      | "vmDir"
      | "tempDir"
      | "finalDir"
      | "beforePublish"
      | "onSettled"
    > & {
      kind: PartKind;
    },
  ): Promise<EpochWriter> {
    const vmDir = join(this.dir, VMS_DIR, p.vmId);
    await io("mkdir", vmDir, () => mkdir(vmDir, { recursive: true }));
    const tempDir = join(vmDir, tempName(partName(p.kind, p.epoch)));
    const finalDir = join(vmDir, partName(p.kind, p.epoch));
    this.#activeTemps.add(tempDir);
    let writer: EpochWriter;
    try {
      writer = await EpochWriter.create({
        ...p,
        pagesPerBlock: this.#pagesPerBlock,
        compression: this.#compression,
        fsync: this.#fsync,
        vmDir,
        tempDir,
        finalDir,
        // Only an uncommitted part can sit under the final name (the epoch is newer than every
        // global epoch, or it is a stale base that was not accepted): replace it.
        beforePublish: () => removeTree(finalDir, join(vmDir, tempName("del"))),
        onSettled: () => {
          this.#activeTemps.delete(tempDir);
          this.#writers.delete(key);
        },
      });
    } catch (e) {
      this.#activeTemps.delete(tempDir);
      throw e;
    }
    this.#writers.set(key, writer);
    return writer;
  }

  async #findParent(vmId: string, epoch: number, explicit: number | undefined): Promise<Part> {
    if (explicit !== undefined) {
      checkEpoch(explicit, vmId);
      if (explicit >= epoch)
        throw new StoreArgumentError(`parent ${explicit} must be older than ${epoch}`, { vmId, epoch });
      const gm = await this.#readGlobalIfExists(explicit);
      if (gm?.vms.some((v) => v.vmId === vmId)) return (await this.#resolveChain(vmId, explicit))[0]!;
      // A part committed for the VM but not globally yet (pipelined checkpoints).
      const part = (await this.#loadPart(vmId, "b", explicit)) ?? (await this.#loadPart(vmId, "e", explicit));
      if (!part)
        throw new StoreNotFoundError(`no committed part of ${vmId} for epoch ${explicit}`, { vmId, epoch });
      return part;
    }
    const epochs = await this.#globalEpochs();
    for (let i = epochs.length - 1; i >= 0; i--) {
      const e = epochs[i]!;
      if (e >= epoch) continue;
      const gm = await this.#readGlobal(e);
      if (gm.vms.some((v) => v.vmId === vmId)) return (await this.#resolveChain(vmId, e))[0]!;
    }
    throw new StoreArgumentError(`${vmId} has no committed epoch below ${epoch}: write a full epoch`, {
      vmId,
      epoch,
    });
  }

  /**
   * Commits global epoch `epoch` for `vmIds`: every named VM must have committed its part of this
   * epoch. Durable when the promise resolves; until then readers do not see the epoch.
   */
  commitGlobal(epoch: number, vmIds: readonly string[]): Promise<void> {
    return this.#exclusive(async () => {
      this.#requireWritable("commitGlobal");
      checkEpoch(epoch);
      if (vmIds.length === 0) throw new StoreArgumentError("commitGlobal needs at least one VM", { epoch });
      for (const v of vmIds) checkVmId(v);
      if (new Set(vmIds).size !== vmIds.length) throw new StoreArgumentError("duplicate VM ids", { epoch });
      const newest = (await this.#globalEpochs()).at(-1) ?? -1;
      if (epoch <= newest) {
        throw new StoreStateError(`epoch ${epoch} is not newer than committed epoch ${newest}`, {
          op: "commitGlobal",
          epoch,
          state: `newest ${newest}`,
          required: `epoch > ${newest}`,
        });
      }
      const vms: GlobalManifest["vms"] = [];
      for (const vmId of vmIds) {
        const part = await this.#loadPart(vmId, "e", epoch);
        if (!part) throw new StoreNotFoundError(`${vmId} has not committed epoch ${epoch}`, { vmId, epoch });
        await this.#walkChain(part);
        vms.push({ vmId, manifestHash: part.manifestHash });
      }
      const bytes = encodeGlobalManifest({ epoch, createdAtMs: Date.now(), vms });
      const dir = join(this.dir, EPOCHS_DIR);
      const tmp = join(dir, tempName(String(epoch)));
      try {
        await writeWhole(tmp, bytes, this.#fsync);
        await publish(tmp, join(dir, globalName(epoch)), dir, this.#fsync);
      } catch (e) {
        await unlinkIfExists(tmp).catch(() => undefined);
        throw e;
      }
    });
  }

  // ------------------------------------------------------------------ reading

  /** Globally committed epochs, oldest first. Unreadable manifests are left out (see `info().problems`). */
  async listEpochs(): Promise<number[]> {
    const out: number[] = [];
    for (const e of await this.#globalEpochs()) {
      try {
        await this.#readGlobal(e);
        out.push(e);
      } catch (err) {
        if (!StoreError.isInstance(err) || err.code === "IO") throw err;
      }
    }
    return out;
  }

  /**
   * The newest committed epoch (that includes `vmId`, when given), and every newer epoch passed
   * over, each with the file and the reason: a global manifest that fails its check (it may have
   * named the VM: nobody can tell), or parts left without a global manifest (a crash before the
   * commit, or a manifest that was removed). A restore must report `skipped`: the epoch it restores
   * is then not the newest checkpoint that was taken.
   */
  async newestEpoch(vmId?: string): Promise<NewestEpoch> {
    if (vmId !== undefined) checkVmId(vmId);
    const files = await this.#globalEpochs();
    const skipped: SkippedEpoch[] = [];
    const newestFile = files.at(-1) ?? -1;
    for (const found of await this.#partsAbove(newestFile, vmId)) {
      skipped.push({
        epoch: found.epoch,
        path: found.path,
        reason: `its part ${found.path} exists but no global manifest ${join(this.dir, EPOCHS_DIR, globalName(found.epoch))} commits it (a crash before the commit, or the manifest was removed)`,
      });
    }
    for (let i = files.length - 1; i >= 0; i--) {
      const e = files[i]!;
      let gm: GlobalManifest;
      try {
        gm = await this.#readGlobal(e);
      } catch (err) {
        if (!StoreError.isInstance(err) || err.code === "IO") throw err;
        const p = problemOf(err, join(this.dir, EPOCHS_DIR, globalName(e)));
        const at = p.offset === undefined ? "" : ` at offset ${p.offset}`;
        const what = p.message.includes(p.path) ? p.message : `${p.path}${at}: ${p.message}`;
        skipped.push({ epoch: e, path: p.path, reason: `its global manifest fails its check: ${what}` });
        continue;
      }
      if (vmId === undefined || gm.vms.some((v) => v.vmId === vmId)) return { epoch: e, skipped };
    }
    const what = vmId === undefined ? "" : ` including ${vmId}`;
    throw new StoreNotFoundError(
      `${this.dir}: no committed epoch${what}${skipped.length > 0 ? ` (passed over: ${skipped.map((s) => `epoch ${s.epoch}: ${s.reason}`).join("; ")})` : ""}`,
      { path: this.dir, ...(vmId === undefined ? {} : { vmId }) },
    );
  }

  /** Parts (of `vmId`, or of any VM) newer than `epoch`, one per epoch, newest first. */
  async #partsAbove(epoch: number, vmId: string | undefined): Promise<{ epoch: number; path: string }[]> {
    const found = new Map<number, string>();
    for (const v of vmId === undefined ? await this.#vmIds() : [vmId]) {
      const dirs = await this.#partDirs(v).catch((e: unknown) => (isEnoent(e) ? [] : Promise.reject(e)));
      for (const d of dirs) {
        if (d.epoch > epoch && !found.has(d.epoch)) found.set(d.epoch, join(this.dir, VMS_DIR, v, d.name));
      }
    }
    return [...found].sort((a, b) => b[0] - a[0]).map(([e, path]) => ({ epoch: e, path }));
  }

  async describeEpoch(epoch: number): Promise<EpochInfo> {
    const gm = await this.#readGlobal(checkEpoch(epoch));
    return { epoch: gm.epoch, createdAtMs: gm.createdAtMs, vmIds: gm.vms.map((v) => v.vmId) };
  }

  /**
   * Materialises VM `vmId`'s RAM at `epoch` into `destPath` (base plus every increment, latest page
   * wins, zero pages zero). Writes a temp file beside `destPath` and renames it on success, so a
   * failed restore leaves no partial file.
   */
  async restoreRam(
    vmId: string,
    epoch: number,
    destPath: string,
    opts: RestoreOptions = {},
  ): Promise<RestoreResult> {
    const t0 = performance.now();
    const parts = await this.#resolveChain(checkVmId(vmId), checkEpoch(epoch, vmId));
    const indexes = await this.#indexes(parts);
    const ram = parts[0]!.manifest.guestRamBytes;
    const tmp = join(dirname(resolve(destPath)), tempName(`${basename(destPath)}.restore`));
    let fh: FileHandle | undefined;
    try {
      fh = await io("open", tmp, () => open(tmp, "wx"));
      await io("truncate", tmp, () => fh!.truncate(ram));
      const stats = await materialize(parts, indexes, fh, tmp, {
        strategy: opts.strategy ?? "newest-first",
        windowBytes: opts.windowBytes ?? DEFAULT_WINDOW_BYTES,
      });
      if (opts.fsync) await io("fsync", tmp, () => fh!.sync());
      await io("close", tmp, () => fh!.close());
      fh = undefined;
      await io("rename", tmp, () => rename(tmp, destPath));
      return {
        vmId,
        epoch,
        bytes: ram,
        ...stats,
        chainLength: parts.length,
        durationMs: performance.now() - t0,
      };
    } catch (e) {
      await fh?.close().catch(() => undefined);
      await unlinkIfExists(tmp).catch(() => undefined);
      throw e;
    }
  }

  async readDeviceState(vmId: string, epoch: number): Promise<Buffer> {
    const parts = await this.#resolveChain(checkVmId(vmId), checkEpoch(epoch, vmId));
    return readBlobPayload(parts[0]!, "devstate");
  }

  async readChannelLog(vmId: string, epoch: number): Promise<Buffer> {
    const parts = await this.#resolveChain(checkVmId(vmId), checkEpoch(epoch, vmId));
    return readBlobPayload(parts[0]!, "chanlog");
  }

  /**
   * Where every page of VM `vmId`'s RAM at `epoch` is stored, for a lazy restore: the chain resolved
   * once into per-page block references (`RamLocation`). Reads the chain's manifests and indexes
   * (verified) and checks each named pages file's length and header; the blocks themselves are
   * not read — whoever serves them must verify each block's hash first. Fails with
   * `StoreArgumentError` naming the file and offset if a live block is compressed.
   */
  async locateRam(vmId: string, epoch: number): Promise<RamLocation> {
    const parts = await this.#resolveChain(checkVmId(vmId), checkEpoch(epoch, vmId));
    const indexes = await this.#indexes(parts);
    const location = locatePages(parts, indexes);
    for (let k = 0; k < parts.length; k++) {
      if (!location.files.includes(resolve(parts[k]!.dir, "pages"))) continue;
      await (await PagesFile.open(parts[k]!, indexes[k]!)).close();
    }
    return location;
  }

  /**
   * One page of VM `vmId` at `epoch`, reading only the chain's indexes and one block. The resolved
   * chain, its indexes and open pages files are cached for lazy restore; a failure on cached state is
   * retried once from scratch (another process may have compacted the store meanwhile).
   */
  async readPage(vmId: string, epoch: number, page: number): Promise<Buffer> {
    checkVmId(vmId);
    checkEpoch(epoch, vmId);
    const key = `${vmId}/${epoch}`;
    const cached = this.#chainCache.get(key);
    if (cached) {
      try {
        return await this.#readPageOf(cached, vmId, epoch, page);
      } catch (e) {
        if (StoreError.isInstance(e) && e.code === "ARGUMENT") throw e;
        await this.#dropReadCaches();
      }
    }
    const parts = await this.#resolveChain(vmId, epoch, page);
    if (this.#chainCache.size >= 256) this.#chainCache.delete(this.#chainCache.keys().next().value!);
    this.#chainCache.set(key, parts);
    return this.#readPageOf(parts, vmId, epoch, page);
  }

  async #readPageOf(parts: Part[], vmId: string, epoch: number, page: number): Promise<Buffer> {
    const m = parts[0]!.manifest;
    if (!Number.isInteger(page) || page < 0 || page >= m.guestRamBytes / m.pageSize) {
      throw new StoreArgumentError(`page ${page} is outside guest RAM`, { vmId, epoch });
    }
    const indexes = await this.#indexes(parts);
    return readPageFrom(parts, indexes, page, async (k) => {
      const part = parts[k]!;
      const id = `${part.dir}#${part.manifestHash}`;
      let pf = this.#pagesFiles.get(id);
      if (!pf) {
        if (this.#pagesFiles.size >= 64) {
          const [oldest, file] = this.#pagesFiles.entries().next().value!;
          this.#pagesFiles.delete(oldest);
          await file.close();
        }
        pf = await PagesFile.open(part, indexes[k]!);
        this.#pagesFiles.set(id, pf);
      }
      return pf;
    });
  }

  async #dropReadCaches(): Promise<void> {
    this.#chainCache.clear();
    const files = [...this.#pagesFiles.values()];
    this.#pagesFiles.clear();
    for (const f of files) await f.close().catch(() => undefined);
  }

  /**
   * Hashes every file of every part used by `epoch` (default: every global epoch) in full. Unlike
   * `listEpochs`, an unreadable global manifest is an error here.
   */
  async verify(epoch?: number): Promise<VerifyResult> {
    const epochs = epoch === undefined ? await this.#globalEpochs() : [checkEpoch(epoch)];
    const seen = new Set<string>();
    let bytes = 0;
    for (const e of epochs) {
      for (const { vmId } of (await this.#readGlobal(e)).vms) {
        for (const part of await this.#resolveChain(vmId, e)) {
          if (seen.has(part.dir)) continue;
          seen.add(part.dir);
          bytes += await verifyPart(part);
        }
      }
    }
    return { epochs, parts: seen.size, bytes };
  }

  /**
   * Like `verify`, but checks every part of every epoch (default: every global epoch) and collects
   * what fails instead of stopping at the first: one problem per unreadable global manifest, broken
   * chain or corrupt part, each naming the file and offset. A part shared by several epochs is
   * checked once.
   */
  async verifyEach(epoch?: number): Promise<VerifyEachResult> {
    const epochs = epoch === undefined ? await this.#globalEpochs() : [checkEpoch(epoch)];
    const checked = new Set<string>();
    const problems: StoreProblem[] = [];
    let bytes = 0;
    for (const e of epochs) {
      let vms: GlobalManifest["vms"];
      try {
        vms = (await this.#readGlobal(e)).vms;
      } catch (err) {
        problems.push(problemOf(err, join(this.dir, EPOCHS_DIR, globalName(e))));
        continue;
      }
      for (const { vmId } of vms) {
        let chain: Part[];
        try {
          chain = await this.#resolveChain(vmId, e);
        } catch (err) {
          problems.push(problemOf(err, join(this.dir, VMS_DIR, vmId)));
          continue;
        }
        for (const part of chain) {
          if (checked.has(part.dir)) continue;
          checked.add(part.dir);
          try {
            bytes += await verifyPart(part);
          } catch (err) {
            problems.push(problemOf(err, part.dir));
          }
        }
      }
    }
    return { epochs, parts: checked.size, bytes, problems };
  }

  /** The parts VM `vmId` needs at `epoch`, newest first: the top part, then each parent down to a full part. */
  async describeChain(vmId: string, epoch: number): Promise<PartInfo[]> {
    const chain = await this.#resolveChain(checkVmId(vmId), checkEpoch(epoch, vmId));
    return chain.map((p) => describePart(basename(p.dir), p));
  }

  async info(): Promise<StoreInfo> {
    const problems: StoreInfo["problems"] = [];
    const note = (e: unknown, path: string): void => {
      const { path: where, code, message } = problemOf(e, path);
      problems.push({ path: where, code, message });
    };
    const epochs: EpochInfo[] = [];
    for (const e of await this.#globalEpochs()) {
      try {
        epochs.push(await this.describeEpoch(e));
      } catch (err) {
        note(err, join(this.dir, EPOCHS_DIR, globalName(e)));
      }
    }
    const vms: StoreInfo["vms"] = [];
    let bytes = 0;
    for (const vmId of await this.#vmIds()) {
      const parts: PartInfo[] = [];
      for (const { name, kind, epoch } of await this.#partDirs(vmId)) {
        try {
          const part = await this.#loadPart(vmId, kind, epoch);
          if (!part) continue;
          const info = describePart(name, part);
          bytes += info.bytes;
          parts.push(info);
        } catch (err) {
          note(err, join(this.dir, VMS_DIR, vmId, name));
        }
      }
      vms.push({ vmId, parts });
    }
    return { dir: this.dir, formatVersion: `${FORMAT_MAJOR}.${FORMAT_MINOR}`, epochs, vms, bytes, problems };
  }

  // ------------------------------------------------------------------ compaction and retention

  /**
   * Makes `epoch` a full base for its VMs (default: all VMs of that global epoch), then, when every VM
   * was covered, drops the older global epochs and the parts only they needed. Every epoch ≥ `epoch`
   * stays readable at every instant.
   */
  compact(epoch: number, opts: { vmIds?: readonly string[] } & CleanOptions = {}): Promise<CompactResult> {
    return this.#exclusive(() => this.#compact(epoch, opts.vmIds, opts.dryRun ?? false));
  }

  /** Keeps the newest `keepLast` global epochs, compacting the oldest kept one into a base. */
  retain(opts: { keepLast: number }): Promise<CompactResult | null> {
    const n = opts.keepLast;
    if (!Number.isInteger(n) || n < 1) throw new StoreArgumentError(`keepLast ${n} must be ≥ 1`);
    return this.#exclusive(async () => {
      const epochs = await this.listEpochs();
      if (epochs.length <= n) return null;
      return this.#compact(epochs[epochs.length - n]!, undefined, false);
    });
  }

  /**
   * Removes temp leftovers and parts no committed epoch needs (parts newer than every global epoch stay).
   * `dryRun` removes nothing and lists what would go; on a read-only store it also lists what a
   * writable `open` removes first (parts newer than the newest global epoch), as `open` + `gc` would.
   */
  gc(opts: CleanOptions = {}): Promise<{ removed: string[] }> {
    return this.#exclusive(async () => {
      if (opts.dryRun) return { removed: await this.#gc(this.readOnly, { dryRun: true }) };
      this.#requireWritable("gc");
      return { removed: await this.#gc(false) };
    });
  }

  /** What the writable `open` of this store removed: uncommitted leftovers of earlier processes. */
  get removedAtOpen(): readonly string[] {
    return this.#removedAtOpen;
  }

  async #compact(
    epoch: number,
    vmIds: readonly string[] | undefined,
    dryRun: boolean,
  ): Promise<CompactResult> {
    if (!dryRun) this.#requireWritable("compact");
    checkEpoch(epoch);
    const gm = await this.#readGlobal(epoch);
    const targets = vmIds ?? gm.vms.map((v) => v.vmId);
    for (const v of targets) {
      if (!gm.vms.some((r) => r.vmId === v))
        throw new StoreNotFoundError(`${v} is not in epoch ${epoch}`, { vmId: v, epoch });
    }
    const compacted: string[] = [];
    for (const vmId of targets) {
      const chain = await this.#resolveChain(vmId, epoch);
      if (chain[0]!.manifest.full) continue;
      compacted.push(vmId);
      if (dryRun) continue;
      await this.#writeBase(vmId, epoch, chain, gm.vms.find((r) => r.vmId === vmId)!.manifestHash);
    }
    const removedEpochs: number[] = [];
    if (gm.vms.every((r) => targets.includes(r.vmId))) {
      const dir = join(this.dir, EPOCHS_DIR);
      for (const e of await this.#globalEpochs()) {
        if (e >= epoch) break;
        if (!dryRun) await unlinkIfExists(join(dir, globalName(e)));
        removedEpochs.push(e);
      }
      if (!dryRun && removedEpochs.length > 0 && this.#fsync) await fsyncDir(dir);
    }
    const removed = dryRun
      ? await this.#gc(this.readOnly, {
          dryRun,
          droppedEpochs: new Set(removedEpochs),
          basesAt: { epoch, vmIds: new Set(compacted) },
        })
      : await this.#gc(false);
    return { epoch, compacted, removedEpochs, removed };
  }

  async #writeBase(vmId: string, epoch: number, chain: Part[], supersedes: bigint): Promise<void> {
    const top = chain[0]!;
    const m = top.manifest;
    const ramPath = join(this.dir, TMP_DIR, tempName(`compact-${vmId}-${epoch}`));
    const indexes = await this.#indexes(chain);
    const fh = await io("open", ramPath, () => open(ramPath, "w+"));
    let writer: EpochWriter | undefined;
    try {
      await io("truncate", ramPath, () => fh.truncate(m.guestRamBytes));
      await materialize(chain, indexes, fh, ramPath, {
        strategy: "newest-first",
        windowBytes: DEFAULT_WINDOW_BYTES,
      });
      writer = await this.#newWriter(`${vmId}/${epoch}/base`, {
        vmId,
        epoch,
        full: true,
        compacted: true,
        parentEpoch: null,
        parentManifestHash: 0n,
        supersedesHash: supersedes,
        guestRamBytes: m.guestRamBytes,
        pageSize: m.pageSize,
        kind: "b",
      });
      await writer.writeRange(fh, 0, m.guestRamBytes / m.pageSize);
      writer.setDeviceState(await readBlobPayload(top, "devstate"));
      writer.setChannelLog(await readBlobPayload(top, "chanlog"));
      await writer.commit();
    } catch (e) {
      await writer?.abort();
      throw e;
    } finally {
      await fh.close().catch(() => undefined);
      await unlinkIfExists(ramPath).catch(() => undefined);
    }
  }

  /**
   * Deletes temp entries of no live writer, parts that no committed epoch needs up to the newest
   * global epoch, and — at open (`startup`) — parts newer than it (a crashed writer's leftovers).
   * When any manifest cannot be read it keeps every part of the VMs concerned. A dry run (`plan`)
   * removes nothing and returns what would be removed; it can pretend that global epochs are gone and
   * that compaction wrote bases (whose chains then end at the base), to plan a `compact`.
   */
  async #gc(startup: boolean, plan?: GcPlan): Promise<string[]> {
    await this.#dropReadCaches();
    const removed: string[] = [];
    const drop = async (path: string, parent: string): Promise<void> => {
      if (!plan?.dryRun) await removeTree(path, join(parent, tempName("del")));
      removed.push(path);
    };
    const tmpDir = join(this.dir, TMP_DIR);
    for (const name of await io("readdir", tmpDir, () => readdir(tmpDir))) {
      if (!this.#activeTemps.has(join(tmpDir, name))) await drop(join(tmpDir, name), tmpDir);
    }
    const epochsDir = join(this.dir, EPOCHS_DIR);
    for (const name of await io("readdir", epochsDir, () => readdir(epochsDir))) {
      if (!name.startsWith(TEMP_PREFIX)) continue;
      if (!plan?.dryRun) await unlinkIfExists(join(epochsDir, name));
      removed.push(name);
    }
    const epochs = (await this.#globalEpochs()).filter((e) => !plan?.droppedEpochs?.has(e));
    const newest = epochs.at(-1) ?? -1;
    const needed = new Set<string>();
    const unsure = new Set<string>();
    let anyUnsure = false;
    for (const e of epochs) {
      let gm: GlobalManifest;
      try {
        gm = await this.#readGlobal(e);
      } catch (err) {
        if (!StoreError.isInstance(err) || err.code === "IO") throw err;
        anyUnsure = true;
        continue;
      }
      for (const { vmId } of gm.vms) {
        try {
          for (const p of await this.#resolveChain(vmId, e)) {
            // A base written at that epoch would end the chain there: the parts from it down go.
            if (plan?.basesAt?.epoch === p.epoch && plan.basesAt.vmIds.has(vmId)) break;
            needed.add(p.dir);
          }
        } catch (err) {
          if (!StoreError.isInstance(err) || err.code === "IO") throw err;
          unsure.add(vmId);
        }
      }
    }
    for (const vmId of await this.#vmIds()) {
      const vmDir = join(this.dir, VMS_DIR, vmId);
      for (const name of await io("readdir", vmDir, () => readdir(vmDir))) {
        const path = join(vmDir, name);
        if (name.startsWith(TEMP_PREFIX)) {
          if (!this.#activeTemps.has(path)) await drop(path, vmDir);
          continue;
        }
        const parsed = parsePartName(name);
        if (!parsed || needed.has(path) || anyUnsure || unsure.has(vmId)) continue;
        if (parsed.epoch <= newest || startup) await drop(path, vmDir);
      }
      if (!plan?.dryRun && (await io("readdir", vmDir, () => readdir(vmDir))).length === 0) {
        await rmdir(vmDir).catch(() => undefined);
      }
    }
    if (!plan?.dryRun && removed.length > 0 && this.#fsync) await fsyncDir(join(this.dir, VMS_DIR));
    return removed;
  }

  // ------------------------------------------------------------------ chains

  /** Resolves the chain of parts for (vmId, epoch), newest first, ending in a full part. */
  async #resolveChain(vmId: string, epoch: number, page?: number): Promise<Part[]> {
    const gm = await this.#readGlobal(epoch);
    const ref = gm.vms.find((v) => v.vmId === vmId);
    if (!ref) throw new StoreNotFoundError(`${vmId} is not part of epoch ${epoch}`, { vmId, epoch });
    const top = await this.#acceptPart(vmId, epoch, ref.manifestHash);
    if (!top) {
      const { path, why } = await this.#missingManifest(vmId, epoch);
      throw new StoreChainError(`${vmId} epoch ${epoch}: its part is missing: ${path} ${why}`, {
        vmId,
        epoch,
        missingEpoch: epoch,
        page,
        path,
      });
    }
    return this.#walkChain(top, epoch, page);
  }

  async #walkChain(top: Part, restoring = top.epoch, page?: number): Promise<Part[]> {
    const chain = [top];
    let cur = top;
    while (!cur.manifest.full) {
      const pe = cur.manifest.parentEpoch!;
      const vmId = cur.vmId;
      const parent =
        pe < cur.epoch ? await this.#acceptPart(vmId, pe, cur.manifest.parentManifestHash) : undefined;
      if (!parent) {
        const where = page === undefined ? "" : ` (page ${page})`;
        const { path, why } = await this.#missingManifest(vmId, pe);
        throw new StoreChainError(
          `${vmId} epoch ${restoring}${where}: parent epoch ${pe} of epoch ${cur.epoch} is missing or does not match: ${path} ${why}`,
          { vmId, epoch: restoring, missingEpoch: pe, page, path },
        );
      }
      const m = parent.manifest;
      if (m.guestRamBytes !== cur.manifest.guestRamBytes || m.pageSize !== cur.manifest.pageSize) {
        throw new StoreCorruptionError(
          "binding",
          `${parent.dir}: RAM geometry differs from its child at offset 48`,
          {
            path: join(parent.dir, "manifest"),
            offset: 48,
            vmId,
            epoch: pe,
          },
        );
      }
      chain.push(parent);
      cur = parent;
    }
    return chain;
  }

  /**
   * For an error: the manifest a chain needed for (vmId, epoch) and did not accept — the part's
   * manifest file when it is absent (deleted), else the manifest whose hash did not match.
   */
  async #missingManifest(vmId: string, epoch: number): Promise<{ path: string; why: string }> {
    const paths = (["b", "e"] as const).map((k) =>
      join(this.dir, VMS_DIR, vmId, partName(k, epoch), "manifest"),
    );
    for (const path of paths) {
      if ((await readIfExists(path)) !== undefined)
        return { path, why: "does not have the hash its child records" };
    }
    return { path: paths[1]!, why: "does not exist" };
  }

  /** The part for (vmId, epoch) bound to `hash`: `b` preferred over `e`, a compacted base may supersede. */
  async #acceptPart(vmId: string, epoch: number, hash: bigint): Promise<Part | undefined> {
    let failure: unknown;
    for (const kind of ["b", "e"] as const) {
      try {
        const part = await this.#loadPart(vmId, kind, epoch);
        if (
          part &&
          (part.manifestHash === hash || (part.manifest.compacted && part.manifest.supersedesHash === hash))
        ) {
          return part;
        }
      } catch (e) {
        if (!StoreError.isInstance(e) || e.code === "IO") throw e;
        failure ??= e;
      }
    }
    if (failure !== undefined) throw failure;
    return undefined;
  }

  async #loadPart(vmId: string, kind: PartKind, epoch: number): Promise<Part | undefined> {
    const dir = join(this.dir, VMS_DIR, vmId, partName(kind, epoch));
    const path = join(dir, "manifest");
    const bytes = await readIfExists(path);
    if (bytes === undefined) return undefined;
    const ctx = { path, vmId, epoch };
    const manifest = decodeVmManifest(bytes, ctx);
    if (manifest.vmId !== vmId || manifest.epoch !== epoch) {
      throw new StoreCorruptionError(
        "binding",
        `${path}: names ${manifest.vmId} epoch ${manifest.epoch} at offset 16`,
        {
          ...ctx,
          offset: 16,
        },
      );
    }
    return { vmId, epoch, dir, manifest, manifestHash: hash64(bytes) };
  }

  async #indexes(parts: readonly Part[]): Promise<PageIndex[]> {
    const out: PageIndex[] = [];
    for (const part of parts) {
      const key = `${part.dir}#${part.manifestHash}`;
      let ix = this.#indexCache.get(key);
      if (!ix) {
        ix = await loadIndex(part);
        if (this.#indexCache.size >= 256) this.#indexCache.delete(this.#indexCache.keys().next().value!);
        this.#indexCache.set(key, ix);
      }
      out.push(ix);
    }
    return out;
  }

  // ------------------------------------------------------------------ directory helpers

  async #globalEpochs(): Promise<number[]> {
    const dir = join(this.dir, EPOCHS_DIR);
    let names: string[];
    try {
      names = await readdir(dir);
    } catch (e) {
      if (isEnoent(e)) return [];
      return io("readdir", dir, () => Promise.reject(e));
    }
    return names
      .map(parseGlobalName)
      .filter((e): e is number => e !== undefined)
      .sort((a, b) => a - b);
  }

  async #readGlobalIfExists(epoch: number): Promise<GlobalManifest | undefined> {
    try {
      return await this.#readGlobal(epoch);
    } catch (e) {
      if (StoreError.isInstance(e) && e.code === "NOT_FOUND") return undefined;
      throw e;
    }
  }

  async #readGlobal(epoch: number): Promise<GlobalManifest> {
    const path = join(this.dir, EPOCHS_DIR, globalName(epoch));
    const bytes = await readIfExists(path);
    if (bytes === undefined) throw new StoreNotFoundError(`epoch ${epoch} is not committed`, { epoch, path });
    const gm = decodeGlobalManifest(bytes, { path, epoch });
    if (gm.epoch !== epoch) {
      throw new StoreCorruptionError("binding", `${path}: names epoch ${gm.epoch} at offset 16`, {
        path,
        offset: 16,
        epoch,
      });
    }
    return gm;
  }

  async #vmIds(): Promise<string[]> {
    const dir = join(this.dir, VMS_DIR);
    const names = await readdir(dir).catch((e: unknown) => (isEnoent(e) ? [] : Promise.reject(e)));
    return names.filter((n) => !n.startsWith(".")).sort();
  }

  async #partDirs(vmId: string): Promise<{ name: string; kind: PartKind; epoch: number }[]> {
    const names = await readdir(join(this.dir, VMS_DIR, vmId));
    return names
      .map((name) => ({ name, parsed: parsePartName(name) }))
      .filter((x) => x.parsed !== undefined)
      .map((x) => ({ name: x.name, kind: x.parsed!.kind, epoch: x.parsed!.epoch }))
      .sort((a, b) => a.epoch - b.epoch || a.name.localeCompare(b.name));
  }

  // ------------------------------------------------------------------ lock and state

  async #lock(): Promise<void> {
    const path = join(this.dir, LOCK_FILE);
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        await writeWhole(path, Buffer.from(`${process.pid}\n`), false);
        return;
      } catch (e) {
        if ((e as { cause?: { code?: string } }).cause?.code !== "EEXIST") throw e;
      }
      const pid = Number.parseInt((await readFile(path, "utf8").catch(() => "")).trim(), 10);
      if (Number.isInteger(pid) && pid > 0 && (pid === process.pid || alive(pid))) {
        throw new StoreLockedError(`${this.dir} is open for writing by pid ${pid}`, { path, pid });
      }
      // The holder died without closing (crash, SIGKILL): take the lock over.
      await unlinkIfExists(path);
    }
    throw new StoreLockedError(`${this.dir}: could not take the lock`, { path, pid: 0 });
  }

  async #unlock(): Promise<void> {
    const path = join(this.dir, LOCK_FILE);
    const owner = await readFile(path, "utf8").catch(() => "");
    if (owner.trim() === String(process.pid)) await unlink(path).catch(() => undefined);
  }

  #requireWritable(op: string): void {
    if (this.#closed || this.readOnly) {
      const state = this.#closed ? "closed" : "read-only";
      throw new StoreStateError(`${op}: store is ${state}`, {
        op,
        path: this.dir,
        state,
        required: "writable",
      });
    }
  }

  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => undefined);
    return run;
  }
}

interface GcPlan {
  dryRun: boolean;
  /** Global epochs to treat as deleted (a compaction drops those older than its epoch). */
  droppedEpochs?: ReadonlySet<number>;
  /** VMs that compaction would give a base at `epoch`. */
  basesAt?: { epoch: number; vmIds: ReadonlySet<string> };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as { code?: string }).code === "EPERM";
  }
}
