import { type FileHandle, open } from "node:fs/promises";
import { connect as netConnect, type Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { PageSet } from "@vpc/pageset";
import { AgentError, DirtyLogError, InterruptedError, StateError } from "./errors.js";
import {
  type CheckpointRequest,
  COPY_ONLY_PROTECTED,
  decodeReply,
  encodeFrame,
  FrameDecoder,
  Op,
  type OpName,
  requestBody,
  type TrackingMode,
} from "./protocol.js";
import {
  decodeSlotTable,
  decodeStagingHeader,
  SLOT_ENTRY_BYTES,
  type SlotSource,
  STAGING_HEADER_BYTES,
  type StagedSlot,
  type StagingHeader,
} from "./staging.js";

export type ConnectionState = "idle" | "connecting" | "open" | "closing";

export interface ConnectOptions {
  /** Keep retrying while the socket does not exist or refuses (QEMU still starting). Default 5000. */
  timeoutMs?: number;
}

export interface AttachOptions {
  /** Path of the memory-backend file QEMU maps as guest RAM (its `mem-path`). */
  memPath: string;
  /** Default "sync". */
  mode?: TrackingMode;
  /** Staging capacity in pages (fixed for the attachment). Default 4096 (16 MiB of 4 KiB pages). */
  stagingSlots?: number;
}

export interface AttachInfo {
  mode: TrackingMode;
  pageSize: number;
  pageCount: number;
  ramBytes: number;
  bitmapBytes: number;
  stagingSlots: number;
  /** userfaultfd features in use, and all the kernel offers (bit masks). */
  features: number;
  availableFeatures: number;
  files: {
    dirty: string;
    accumulated: string;
    set: string;
    order: string;
    staging: string;
    recent: string;
    copied: string;
  };
}

/** First writes of one interval, in the order the agent observed them. */
export interface FirstWrites {
  pages: Uint32Array;
  /** 0 in sync mode; in async mode the peek number that first saw the page (harvest = last). */
  classes: Uint32Array;
  /** Monotonic ns (CLOCK_MONOTONIC, comparable with process.hrtime.bigint()) of the observation. */
  timesNs: BigInt64Array;
}

export interface HarvestResult {
  /** D: pages written during the interval that just ended. */
  dirty: PageSet;
  /** Pages written since the last `confirm()` (D of every unconfirmed harvest): what a save must cover. */
  accumulated: PageSet;
  order: FirstWrites;
  /** true in sync mode (order is exact); false in async mode (order classes from peeks). */
  exact: boolean;
  startNs: bigint;
  endNs: bigint;
  /** Time the agent spent (ns). */
  ns: number;
}

/** The reply of `checkpoint()`: the pause's whole agent work. Times in ns (agent clock). */
export interface CheckpointReply {
  /** true when this call armed tracking (the first checkpoint): no interval was harvested. */
  armed: boolean;
  /** |D|, |accumulated|, first-write records and |R| of the harvested interval (0 when `armed`). */
  dirty: number;
  accumulated: number;
  orders: number;
  /** |R|: pages written since `mark()` (the whole interval when it was not marked). */
  recent: number;
  marked: boolean;
  exact: boolean;
  startNs: bigint;
  endNs: bigint;
  /** Pages the checkpoint saves, the predicted part of them, and |R| as used by the prediction. */
  toSave: number;
  predicted: number;
  window: number;
  /** The predicted part reached the fallback fraction, so everything was copied. */
  fellBack: boolean;
  copied: number;
  protected: number;
  harvestNs: number;
  planNs: number;
  copyNs: number;
  protectNs: number;
  ns: number;
}

/** The sets of the last `checkpoint()`, read from the shared files (after `cont`, off the pause). */
export interface CheckpointSets {
  dirty: PageSet;
  accumulated: PageSet;
  /** R: written since the mark (the pre-pause window). */
  recent: PageSet;
  /** The pages copied in the pause. */
  copied: PageSet;
  order: FirstWrites;
}

export interface LazyLoadOptions {
  /** Path of the memory-backend file QEMU maps as guest RAM (empty and sparse). */
  memPath: string;
  /** The lazy map file (`writeLazyMap`). */
  mapPath: string;
  /** Start the background loader (default true); without it only faults fill pages (tests). */
  loader?: boolean;
}

export interface LazyLoadInfo {
  pages: number;
  zeroPages: number;
  blocks: number;
  files: number;
  /** Pages QEMU had written before the range was registered, given their committed content. */
  prefilled: number;
  ns: number;
}

export interface LazyStatus {
  active: boolean;
  /** Every block is in and the range is unregistered: RAM is as after an eager restore. */
  done: boolean;
  failed: boolean;
  /** The first failure: the store file, the block's offset in it and why. */
  error: { message: string; offset: number } | null;
  pages: number;
  zeroPages: number;
  blocks: number;
  blocksLeft: number;
  /** MISSING faults taken (zero pages included) and the handler's total and longest time on them. */
  faults: number;
  zeroFaults: number;
  faultNs: number;
  faultMaxNs: number;
  blocksByFault: number;
  blocksByLoader: number;
  pagesByFault: number;
  pagesByLoader: number;
  prefilled: number;
  bytesRead: number;
  /** Faults left blocked because their block failed verification (the VM must not run on). */
  blockedFaults: number;
  /** CLOCK_MONOTONIC ns (0: not yet). */
  firstFaultNs: number;
  startNs: number;
  doneNs: number;
}

export interface SaveStatus {
  saving: boolean;
  /** Pages still protected for COW. */
  pending: number;
  /** Pages the saver has copied so far. */
  copied: number;
  /** Staging slots in use. */
  inUse: number;
  startNs: bigint;
  /** When the saver finished (0 while it runs). */
  endNs: bigint;
  /** Async mode: the order class of the peek taken when the saver finished (pages written during the save). */
  endClass: number;
}

export interface PeekResult {
  written: number;
  new: number;
  class: number;
  atNs: bigint;
  ns: number;
}

export interface CopyResult {
  copied: number;
  skipped: number;
  /** Pages of the set not copied because staging was full. */
  remaining: number;
  /** Pages still protected for COW. */
  pending: number;
  ns: number;
}

/** Default bound of `readStaged`: 4096 pages (16 MiB of 4 KiB pages) per batch. */
const STAGED_BATCH_PAGES = 4096;

/**
 * Staged pages read in one batch (`readStaged`), still holding their slots: store them, then
 * `releaseStaged(batch)`. Entry i of `pages`, `sources` and `slots` is one page, in slot order.
 */
export interface StagedPages {
  /** Guest page numbers. */
  pages: Uint32Array;
  /** Their saved content, back to back: page i at i × pageSize. */
  data: Buffer;
  /** Why each page was staged: a COW fault on a write or a read, or a copy (checkpoint, copy, saver). */
  sources: SlotSource[];
  /** The staging slots holding them (what `releaseStaged` frees). */
  slots: Uint32Array;
  /** Slots filled when the slot table was read: more than `pages.length` when `maxPages` cut the batch. */
  staged: number;
}

export interface FaultStats {
  count: number;
  totalNs: number;
  p50Ns: number;
  p90Ns: number;
  p99Ns: number;
  maxNs: number;
}
export interface TimerStats {
  count: number;
  totalNs: number;
  lastNs: number;
}
export interface AgentStats {
  mode: TrackingMode;
  armed: boolean;
  failed: boolean;
  pageCount: number;
  trackingFaults: FaultStats;
  cowFaults: FaultStats;
  stagingWaits: { count: number; totalNs: number };
  staging: { slots: number; inUse: number; peak: number; bytesInUse: number; peakBytes: number };
  pending: number;
  reprotectWhole: number;
  reprotectRuns: number;
  arm: TimerStats;
  harvest: TimerStats;
  peek: TimerStats;
  protect: TimerStats;
  copy: TimerStats;
  /** COW faults raised by a read (async mode): the page was saved, but not because it was written. */
  cowFaultsOnRead: number;
  minorFaultsUnprotected: number;
}

interface Pending {
  op: OpName;
  resolve(v: Record<string, unknown>): void;
  reject(e: unknown): void;
}

interface Files {
  dirty: FileHandle;
  accumulated: FileHandle;
  set: FileHandle;
  order: FileHandle;
  staging: FileHandle;
  recent: FileHandle;
  copied: FileHandle;
  stagingHeader: StagingHeader;
}

function alignedBytes(n: number): Uint8Array {
  return new Uint8Array(new ArrayBuffer(Math.max(4, Math.ceil(n / 4) * 4)));
}

/**
 * Client of one agent (one QEMU process). Commands run one at a time, in call order; the agent
 * serves one connection at a time, and closing the connection makes the agent detach.
 */
export class DirtyLogClient {
  #state: ConnectionState = "idle";
  #socket: Socket | undefined;
  #decoder = new FrameDecoder();
  #pending = new Map<number, Pending>();
  #nextId = 1;
  #queue: Promise<unknown> = Promise.resolve();
  #info: AttachInfo | undefined;
  #files: Files | undefined;
  #closeCause: unknown;
  /** Replies whose id matched no pending call (dropped). */
  droppedReplies = 0;

  get state(): ConnectionState {
    return this.#state;
  }
  /** Geometry and file paths of the current attachment, if any. */
  get attachment(): AttachInfo | undefined {
    return this.#info;
  }
  /** Number of calls waiting for a reply (0 after close). */
  get pendingCalls(): number {
    return this.#pending.size;
  }

  static async connect(socketPath: string, options: ConnectOptions = {}): Promise<DirtyLogClient> {
    const c = new DirtyLogClient();
    await c.connect(socketPath, options);
    return c;
  }

  async connect(socketPath: string, options: ConnectOptions = {}): Promise<void> {
    if (this.#state !== "idle") throw new StateError(this.#state, "idle", "connect");
    this.#state = "connecting";
    const deadline = Date.now() + (options.timeoutMs ?? 5000);
    try {
      for (;;) {
        try {
          this.#socket = await new Promise<Socket>((resolve, reject) => {
            const s = netConnect(socketPath);
            s.once("connect", () => {
              s.off("error", reject);
              resolve(s);
            });
            s.once("error", reject);
          });
          break;
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code;
          if ((code !== "ENOENT" && code !== "ECONNREFUSED") || Date.now() >= deadline) throw e;
          await sleep(20);
        }
      }
    } catch (cause) {
      this.#state = "idle";
      throw new DirtyLogError("CONNECT", `cannot connect to the agent at ${socketPath}`, {
        op: "connect",
        path: socketPath,
        cause,
      });
    }
    this.#decoder = new FrameDecoder();
    this.#closeCause = undefined;
    const s = this.#socket;
    s.on("data", (chunk: Buffer) => this.#onData(chunk));
    s.on("error", (e) => this.#teardown(e));
    s.on("close", () => this.#teardown(this.#closeCause ?? new Error("agent closed the connection")));
    this.#state = "open";
  }

  #onData(chunk: Buffer): void {
    let frames: ReturnType<FrameDecoder["push"]>;
    try {
      frames = this.#decoder.push(chunk);
    } catch (e) {
      this.#closeCause = e;
      this.#socket?.destroy();
      return;
    }
    for (const f of frames) {
      const p = this.#pending.get(f.id);
      if (!p) {
        this.droppedReplies++;
        continue;
      }
      this.#pending.delete(f.id);
      try {
        const r = decodeReply(f);
        if (r.type === "ok") p.resolve(r.value);
        else p.reject(new AgentError(r.opName, r.errno, r.message));
      } catch (e) {
        p.reject(e);
      }
    }
  }

  #teardown(cause: unknown): void {
    if (this.#state === "idle") return;
    this.#closeCause ??= cause;
    for (const [id, p] of this.#pending) {
      this.#pending.delete(id);
      p.reject(new InterruptedError(p.op, this.#closeCause));
    }
    this.#socket?.destroy();
    this.#socket = undefined;
    void this.#closeFiles();
    this.#info = undefined;
    this.#state = "idle";
  }

  async #closeFiles(): Promise<void> {
    const f = this.#files;
    this.#files = undefined;
    if (!f) return;
    await Promise.allSettled([
      f.dirty.close(),
      f.accumulated.close(),
      f.set.close(),
      f.order.close(),
      f.staging.close(),
      f.recent.close(),
      f.copied.close(),
    ]);
  }

  /** Closes the connection; the agent then detaches (unprotects everything). */
  async close(): Promise<void> {
    if (this.#state === "idle") return;
    const s = this.#socket;
    this.#state = "closing";
    this.#closeCause = new Error("closed by the client");
    await new Promise<void>((resolve) => {
      if (!s || s.destroyed) return resolve();
      s.once("close", () => resolve());
      s.end();
    });
    this.#teardown(this.#closeCause);
  }

  #call(
    op: OpName,
    body: Uint8Array = new Uint8Array(0),
    before?: () => Promise<void>,
  ): Promise<Record<string, unknown>> {
    if (this.#state !== "open") return Promise.reject(new StateError(this.#state, "open", op));
    const run = async (): Promise<Record<string, unknown>> => {
      // Queued behind calls that saw the connection close.
      if (this.#state !== "open" || !this.#socket) throw new InterruptedError(op, this.#closeCause);
      if (before) await before();
      const id = this.#nextId;
      this.#nextId = (this.#nextId % 0xffffffff) + 1;
      const socket = this.#socket;
      return new Promise((resolve, reject) => {
        this.#pending.set(id, { op, resolve, reject });
        socket.write(encodeFrame({ id, op: Op[op], flags: 0, body }));
      });
    };
    const p = this.#queue.then(run, run);
    this.#queue = p.catch(() => undefined);
    return p;
  }

  #needFiles(op: string): Files & { info: AttachInfo } {
    if (!this.#files || !this.#info) throw new StateError("detached", "attached", op);
    return { ...this.#files, info: this.#info };
  }

  async #writeSet(set: PageSet, op: string): Promise<void> {
    const f = this.#needFiles(op);
    if (set.pageCount !== f.info.pageCount) {
      throw new DirtyLogError("IO", `${op}: set has ${set.pageCount} pages, guest RAM ${f.info.pageCount}`, {
        op,
      });
    }
    const bytes = set.toBytes().subarray(0, f.info.bitmapBytes);
    await f.set.write(bytes, 0, bytes.length, 0);
  }

  async #readBitmap(h: FileHandle, op: string, path: string): Promise<PageSet> {
    const info = this.#needFiles(op).info;
    const bytes = alignedBytes(info.bitmapBytes);
    try {
      await h.read(bytes, 0, info.bitmapBytes, 0);
    } catch (cause) {
      throw new DirtyLogError("IO", `${op}: read ${path}`, { op: "read", path, cause });
    }
    return PageSet.fromBytes(info.pageCount, bytes);
  }

  async hello(): Promise<{
    agent: string;
    protocol: number;
    pid: number;
    availableFeatures: number;
    attached: boolean;
  }> {
    return (await this.#call("hello")) as never;
  }

  /** Registers guest RAM; tracking starts with `arm()`. Fails with AgentError (ENOTSUP) when the kernel lacks the mode. */
  async attach(options: AttachOptions): Promise<AttachInfo> {
    const info = (await this.#call(
      "attach",
      requestBody.attach(options.mode ?? "sync", options.stagingSlots ?? 4096, options.memPath),
    )) as unknown as AttachInfo;
    try {
      const [dirty, accumulated, set, order, staging, recent, copied] = await Promise.all([
        open(info.files.dirty, "r"),
        open(info.files.accumulated, "r"),
        open(info.files.set, "r+"),
        open(info.files.order, "r"),
        open(info.files.staging, "r"),
        open(info.files.recent, "r"),
        open(info.files.copied, "r"),
      ]);
      const hdr = new Uint8Array(STAGING_HEADER_BYTES);
      await staging.read(hdr, 0, hdr.length, 0);
      this.#files = {
        dirty,
        accumulated,
        set,
        order,
        staging,
        recent,
        copied,
        stagingHeader: decodeStagingHeader(hdr),
      };
    } catch (cause) {
      await this.#closeFiles();
      await this.#call("detach").catch(() => undefined);
      throw new DirtyLogError("IO", "attach: cannot open the agent's shared files", { op: "open", cause });
    }
    this.#info = info;
    return info;
  }

  /** Switches tracking mode (VM paused). Pages written so far in the interval are kept. */
  async setMode(mode: TrackingMode): Promise<TrackingMode> {
    const r = await this.#call("mode", requestBody.mode(mode));
    if (this.#info) this.#info.mode = r.mode as TrackingMode;
    return r.mode as TrackingMode;
  }

  /** Write-protects all guest RAM: a new tracking interval starts now. */
  async arm(): Promise<{ startNs: bigint; ns: number }> {
    const r = await this.#call("arm");
    return { startNs: BigInt(r.startNs as number), ns: r.ns as number };
  }

  async #readOrder(n: number, op: string): Promise<FirstWrites> {
    const f = this.#needFiles(op);
    const raw = alignedBytes(n * 16);
    if (n) await f.order.read(raw, 0, n * 16, 0);
    const v = new DataView(raw.buffer);
    const order: FirstWrites = {
      pages: new Uint32Array(n),
      classes: new Uint32Array(n),
      timesNs: new BigInt64Array(n),
    };
    for (let i = 0; i < n; i++) {
      order.pages[i] = v.getUint32(i * 16, true);
      order.classes[i] = v.getUint32(i * 16 + 4, true);
      order.timesNs[i] = v.getBigInt64(i * 16 + 8, true);
    }
    return order;
  }

  /** VM paused: ends the interval, returns its dirty set and first-write order, starts the next. */
  async harvest(): Promise<HarvestResult> {
    const r = await this.#call("harvest");
    const f = this.#needFiles("harvest");
    const [dirty, accumulated, order] = await Promise.all([
      this.#readBitmap(f.dirty, "harvest", f.info.files.dirty),
      this.#readBitmap(f.accumulated, "harvest", f.info.files.accumulated),
      this.#readOrder(r.orders as number, "harvest"),
    ]);
    return {
      dirty,
      accumulated,
      order,
      exact: r.exact as boolean,
      startNs: BigInt(r.startNs as number),
      endNs: BigInt(r.endNs as number),
      ns: r.ns as number,
    };
  }

  /**
   * Starts the pre-pause window: pages written so far are kept for the interval's D, and the next
   * harvest (or `checkpoint`) reports as R only what is written from now on.
   */
  async mark(): Promise<{ written: number; atNs: bigint; ns: number }> {
    const r = await this.#call("mark");
    return { written: r.written as number, atNs: BigInt(r.atNs as number), ns: r.ns as number };
  }

  /**
   * VM paused: the whole pause in one call — ends the interval (or arms tracking, the first time),
   * then copies and protects the save set as `request.plan` says. `predicted` (plan "predict") is
   * P from the history; the agent adds the pre-pause window and its fronts. `addSet` pages come
   * from `predicted`'s place too. Read the sets afterwards with `checkpointSets()`.
   */
  async checkpoint(request: CheckpointRequest, set?: PageSet): Promise<CheckpointReply> {
    if ((request.plan === "predict" || request.addSet) && !set) {
      throw new DirtyLogError("IO", `checkpoint: plan ${request.plan} needs a page set`, {
        op: "checkpoint",
      });
    }
    const r = await this.#call(
      "checkpoint",
      requestBody.checkpoint(request),
      set ? () => this.#writeSet(set, "checkpoint") : undefined,
    );
    return {
      armed: r.armed as boolean,
      dirty: (r.dirty as number | undefined) ?? 0,
      accumulated: (r.accumulated as number | undefined) ?? 0,
      orders: (r.orders as number | undefined) ?? 0,
      recent: (r.recent as number | undefined) ?? 0,
      marked: (r.marked as boolean | undefined) ?? false,
      exact: (r.exact as boolean | undefined) ?? this.#info?.mode === "sync",
      startNs: BigInt((r.startNs as number | undefined) ?? 0),
      endNs: BigInt((r.endNs as number | undefined) ?? 0),
      toSave: r.toSave as number,
      predicted: r.predicted as number,
      window: r.window as number,
      fellBack: r.fellBack as boolean,
      copied: r.copied as number,
      protected: r.protected as number,
      harvestNs: r.harvestNs as number,
      planNs: r.planNs as number,
      copyNs: r.copyNs as number,
      protectNs: r.protectNs as number,
      ns: r.ns as number,
    };
  }

  /** The sets the last `checkpoint()` published (valid until the next harvest or checkpoint). */
  async checkpointSets(reply: CheckpointReply): Promise<CheckpointSets> {
    const f = this.#needFiles("checkpointSets");
    const files = f.info.files;
    const [dirty, accumulated, recent, copied, order] = await Promise.all([
      this.#readBitmap(f.dirty, "checkpointSets", files.dirty),
      this.#readBitmap(f.accumulated, "checkpointSets", files.accumulated),
      this.#readBitmap(f.recent, "checkpointSets", files.recent),
      this.#readBitmap(f.copied, "checkpointSets", files.copied),
      this.#readOrder(reply.orders, "checkpointSets"),
    ]);
    return { dirty, accumulated, recent, copied, order };
  }

  /**
   * After `cont`: starts the agent's saver thread, which copies every page still protected into
   * staging (the pages of `first` before the others) and maps it back. Drain staging meanwhile;
   * `saveStatus()` says when it is done. Its end-of-save peek (async mode: the pages written during
   * the save, as an order class) comes no earlier than `minWindowMs` after the start. With
   * `maxInUse` the saver holds at most that many pages staged (COW faults may still use the rest),
   * which bounds the checkpoint's memory to what the drain keeps up with.
   */
  async startSave(
    first?: PageSet,
    options: { minWindowMs?: number; maxInUse?: number } = {},
  ): Promise<{ pending: number; startNs: bigint }> {
    const r = await this.#call(
      "save",
      requestBody.save(first !== undefined, options.minWindowMs ?? 0, options.maxInUse ?? 0),
      first ? () => this.#writeSet(first, "save") : undefined,
    );
    return { pending: r.pending as number, startNs: BigInt(r.startNs as number) };
  }

  async saveStatus(): Promise<SaveStatus> {
    const r = await this.#call("saveStatus");
    return {
      saving: r.saving as boolean,
      pending: r.pending as number,
      copied: r.copied as number,
      inUse: r.inUse as number,
      startNs: BigInt(r.startNs as number),
      endNs: BigInt(r.endNs as number),
      endClass: r.endClass as number,
    };
  }

  /**
   * Lazy restore: registers `memPath`'s mapping for MISSING faults and fills each page from the
   * lazy map's store blocks (verified) on its first touch, and in the background. Before QEMU's
   * incoming migration; tracking (`attach`) waits until every page is in.
   */
  async lazyLoad(options: LazyLoadOptions): Promise<LazyLoadInfo> {
    return (await this.#call(
      "lazyLoad",
      requestBody.lazyLoad(options.memPath, options.mapPath, options.loader ?? true),
    )) as never;
  }

  /** Progress of the lazy load; with `waitMs`, first waits up to that long for it to end. */
  async lazyStatus(options: { waitMs?: number } = {}): Promise<LazyStatus> {
    return (await this.#call("lazyStatus", requestBody.lazyStatus(options.waitMs))) as never;
  }

  /** Async mode: records which pages were written so far (one order class); sync mode: count only. */
  async peek(): Promise<PeekResult> {
    const r = await this.#call("peek");
    return { ...(r as unknown as PeekResult), atNs: BigInt(r.atNs as number) };
  }

  /** The accumulated set is durable: forget it. Without this, later harvests keep reporting it. */
  async confirm(): Promise<{ cleared: number }> {
    return (await this.#call("confirm")) as never;
  }

  /** VM paused, after harvest: keep `set` protected for COW after resume. */
  async protect(set: PageSet): Promise<{ protected: number; ns: number }> {
    return (await this.#call("protect", new Uint8Array(0), () => this.#writeSet(set, "protect"))) as never;
  }

  /**
   * Copies pages into staging now, as far as capacity allows. With `onlyProtected`, only pages still
   * protected for COW (the saver's path: pages the fault handler saved are skipped).
   */
  async copy(set: PageSet, options: { onlyProtected?: boolean } = {}): Promise<CopyResult> {
    const body = requestBody.copy(options.onlyProtected ? COPY_ONLY_PROTECTED : 0);
    return (await this.#call("copy", body, () => this.#writeSet(set, "copy"))) as never;
  }

  /** Frees staging slots whose pages are stored. */
  async release(slots: Iterable<number>): Promise<{ released: number; inUse: number }> {
    return (await this.#call("release", requestBody.release(slots))) as never;
  }

  /** Frees the staging slots holding any page of `set`. */
  async releaseSet(set: PageSet): Promise<{ released: number; inUse: number }> {
    return (await this.#call("releaseSet", new Uint8Array(0), () =>
      this.#writeSet(set, "releaseSet"),
    )) as never;
  }

  async stats(): Promise<AgentStats> {
    return (await this.#call("stats")) as never;
  }

  /** Unprotects everything and stops tracking; the connection stays open for a new attach. */
  async detach(): Promise<void> {
    await this.#call("detach");
    await this.#closeFiles();
    this.#info = undefined;
  }

  /** Filled staging slots, read from the staging file's slot table, in slot order. */
  async stagedSlots(): Promise<StagedSlot[]> {
    return this.#readSlotTable("stagedSlots");
  }

  async #readSlotTable(op: string): Promise<StagedSlot[]> {
    const f = this.#needFiles(op);
    const h = f.stagingHeader;
    const bytes = new Uint8Array(h.slotCount * SLOT_ENTRY_BYTES);
    try {
      await f.staging.read(bytes, 0, bytes.length, h.tableOffset);
    } catch (cause) {
      throw new DirtyLogError("IO", `${op}: read the slot table of ${f.info.files.staging}`, {
        op: "read",
        path: f.info.files.staging,
        cause,
      });
    }
    return decodeSlotTable(bytes, h.slotCount);
  }

  /**
   * Reads up to `maxPages` staged pages (the lowest slots first) and their content in one batch,
   * one file read per run of consecutive slots. The slots stay filled until `releaseStaged(batch)`:
   * release only once the pages are stored, so a crash in between loses none.
   */
  async readStaged(maxPages = STAGED_BATCH_PAGES): Promise<StagedPages> {
    if (!Number.isInteger(maxPages) || maxPages < 1) {
      throw new RangeError(`readStaged: maxPages must be a positive integer, got ${maxPages}`);
    }
    const all = await this.#readSlotTable("readStaged");
    const f = this.#needFiles("readStaged");
    const { pageSize, dataOffset } = f.stagingHeader;
    const part = all.slice(0, maxPages);
    const batch: StagedPages = {
      pages: new Uint32Array(part.length),
      data: Buffer.allocUnsafe(part.length * pageSize),
      sources: part.map((s) => s.source),
      slots: new Uint32Array(part.length),
      staged: all.length,
    };
    for (let i = 0; i < part.length; ) {
      let j = i + 1;
      while (j < part.length && part[j]!.slot === part[j - 1]!.slot + 1) j++;
      const bytes = (j - i) * pageSize;
      const at = dataOffset + part[i]!.slot * pageSize;
      let read: number;
      try {
        ({ bytesRead: read } = await f.staging.read(batch.data, i * pageSize, bytes, at));
      } catch (cause) {
        throw new DirtyLogError("IO", `readStaged: read ${bytes} bytes at ${at} of ${f.info.files.staging}`, {
          op: "read",
          path: f.info.files.staging,
          cause,
        });
      }
      if (read !== bytes) {
        throw new DirtyLogError(
          "IO",
          `readStaged: ${f.info.files.staging} ended after ${read} of ${bytes} bytes at ${at} (slots ${part[i]!.slot}-${part[j - 1]!.slot})`,
          { op: "read", path: f.info.files.staging },
        );
      }
      for (let k = i; k < j; k++) {
        batch.pages[k] = part[k]!.page;
        batch.slots[k] = part[k]!.slot;
      }
      i = j;
    }
    return batch;
  }

  /** Frees the slots of a `readStaged` batch: call it once the batch's pages are stored. */
  async releaseStaged(batch: StagedPages): Promise<{ released: number; inUse: number }> {
    return this.release(batch.slots);
  }

  /**
   * The saver loop of a COW checkpoint: stores every staged page (COW faults and earlier copies),
   * copies the still-protected pages of `set` through staging as capacity allows, releases what
   * was stored, until nothing of `set` is protected and staging is empty. Each page is stored once.
   */
  async saveProtected(
    set: PageSet,
    store: (page: number, bytes: Uint8Array) => Promise<void> | void,
  ): Promise<{ fromFaults: number; fromCopies: number }> {
    let fromFaults = 0;
    let fromCopies = 0;
    const pageSize = this.#needFiles("saveProtected").stagingHeader.pageSize;
    for (;;) {
      const batch = await this.readStaged();
      for (let i = 0; i < batch.pages.length; i++) {
        await store(batch.pages[i]!, batch.data.subarray(i * pageSize, (i + 1) * pageSize));
        if (batch.sources[i] === "cow") fromFaults++;
        else fromCopies++;
      }
      if (batch.pages.length) await this.releaseStaged(batch);
      if (batch.pages.length < batch.staged) continue;
      const r = await this.copy(set, { onlyProtected: true });
      if (r.copied === 0 && r.pending === 0 && (await this.stagedSlots()).length === 0) break;
    }
    return { fromFaults, fromCopies };
  }
}
