/**
 * The engines that run on the dirty-log agent: stop-copy, cow, vpc and precopy (ARCHITECTURE.md §4).
 * One class; the engine kind only decides which pages are copied in the pause, which are
 * write-protected for the saver, and whether live rounds come first. See docs/engines.md.
 */
import { type FileHandle, open, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import {
  type AgentStats,
  type DirtyLogClient,
  decodeStagingHeader,
  type HarvestResult,
  harvestToTraceRecord,
  type StagingHeader,
} from "@vpc/dirty-log";
import { PageSet } from "@vpc/pageset";
import { PageHistory, parseStrategy, type Strategy } from "@vpc/predictor";
import type { EpochWriter } from "@vpc/storage";
import { CheckpointError } from "../errors.js";
import { encodeEnvelope } from "./envelope.js";
import { EngineCheckpointError } from "./errors.js";
import { type EngineSpec, formatEngineSpec } from "./spec.js";
import type {
  CheckpointEngine,
  CheckpointMetrics,
  EngineContext,
  EngineName,
  PredictionMetrics,
} from "./types.js";

/** Staging slots drained into the store per read (bounds the saver's own buffer to 16 MiB). */
const DRAIN_CHUNK = 4096;

const now = (): bigint => process.hrtime.bigint();
const ms = (ns: bigint | number): number => Number(ns) / 1e6;

interface SaveCounts {
  cow: number;
  copy: number;
  peakSlots: number;
  faulted: PageSet;
}

export class AgentEngine implements CheckpointEngine {
  readonly name: EngineName;
  readonly spec: string;
  readonly #ctx: EngineContext;
  readonly #agent: DirtyLogClient;
  readonly #params: Readonly<Record<string, number>>;
  readonly #strategy: Strategy | undefined;
  #history: PageHistory | undefined;
  #taken = 0;
  #lastStats: AgentStats | undefined;
  #lastPrediction: { epoch: number; p: PageSet; faulted: PageSet; saveEndNs: bigint } | undefined;
  #staging: { path: string; fh: FileHandle; header: StagingHeader } | undefined;

  constructor(ctx: EngineContext, spec: EngineSpec) {
    if (!ctx.agent) {
      throw new CheckpointError("engine", `${spec.name} needs the dirty-log agent`, { vmId: ctx.vm.name });
    }
    this.name = spec.name;
    this.#ctx = ctx;
    this.#agent = ctx.agent;
    this.#params = spec.params;
    this.#strategy = spec.strategy === undefined ? undefined : parseStrategy(spec.strategy);
    this.spec = formatEngineSpec(this.#strategy ? { ...spec, strategy: this.#strategy.spec } : spec);
  }

  async close(): Promise<void> {
    await this.#staging?.fh.close().catch(() => undefined);
    this.#staging = undefined;
  }

  async checkpoint(epoch: number): Promise<CheckpointMetrics> {
    const { vm, store } = this.#ctx;
    const agent = this.#agent;
    const info = agent.attachment;
    if (!info) throw new EngineCheckpointError(this.spec, epoch, "begin", new Error("agent is not attached"));
    const pageCount = info.pageCount;
    const full = this.#taken === 0;
    const startedAt = new Date().toISOString();
    let stage = "begin";
    let writer: EpochWriter | undefined;
    let protectedSet: PageSet | undefined;
    let paused = false;
    let committed = false;
    try {
      writer = await store.beginEpoch(vm.name, epoch, {
        guestRamBytes: info.ramBytes,
        pageSize: info.pageSize,
        full,
      });
      await this.#openStaging();
      stage = "stats";
      const s0 = await agent.stats();
      const counts: SaveCounts = { cow: 0, copy: 0, peakSlots: 0, faulted: new PageSet(pageCount) };

      // precopy: live rounds of harvest + copy while the guest runs.
      let liveRounds = 0;
      let pagesCopiedLive = 0;
      let carried: PageSet | undefined;
      let armed = s0.armed;
      const tStart = now();
      if (this.name === "precopy") {
        stage = "live";
        if (!armed) {
          await agent.arm();
          armed = true;
        }
        let set = full ? new PageSet(pageCount).fill() : (await agent.harvest()).accumulated;
        for (;;) {
          pagesCopiedLive += await this.#copyInBatches(
            set,
            writer,
            counts,
            false,
            this.#params.batch ?? 2048,
          );
          liveRounds++;
          set = (await agent.harvest()).dirty;
          if (liveRounds >= (this.#params.rounds ?? 4) || set.count() < (this.#params.threshold ?? 512))
            break;
        }
        carried = set;
        counts.copy = 0;
      }

      stage = "pause";
      const tStop = now();
      await vm.pause();
      paused = true;
      const tStopped = now();
      stage = "harvest";
      let harvest: HarvestResult | undefined;
      if (armed) harvest = await agent.harvest();
      else await agent.arm();
      const tHarvested = now();
      const prediction = harvest && this.#lastPrediction ? this.#score(harvest) : null;
      this.#lastPrediction = undefined;

      let toSave: PageSet;
      if (this.name === "precopy") toSave = harvest ? harvest.dirty.or(carried!) : carried!;
      else if (full || !harvest) toSave = new PageSet(pageCount).fill();
      else toSave = harvest.accumulated;
      const pagesDirty = full ? pageCount : (harvest?.accumulated.count() ?? pageCount);

      let copySet: PageSet | undefined;
      let protectSet: PageSet | undefined;
      if (this.name === "stop-copy" || this.name === "precopy") copySet = toSave;
      else if (this.name === "cow") protectSet = toSave;
      else {
        // vpc: copy D ∩ P now, protect D ∖ P.
        this.#history ??= new PageHistory(pageCount, Math.max(1, this.#strategy!.depth));
        if (harvest && !full) {
          this.#history.push({ dirty: harvest.dirty, order: harvestToTraceRecord(epoch, harvest).order });
          copySet = this.#strategy!.predict(this.#history).and(toSave);
        }
        protectSet = copySet ? toSave.andNot(copySet) : toSave;
      }

      stage = "copy";
      const pagesCopiedInPause = copySet?.count() ?? 0;
      if (copySet && pagesCopiedInPause > 0) {
        const r = await agent.copy(copySet);
        if (r.remaining > 0)
          throw new Error(`staging full: ${r.remaining} pages not copied (attach with more slots)`);
      }
      const tCopied = now();
      stage = "protect";
      const pagesProtected = protectSet?.count() ?? 0;
      if (protectSet && pagesProtected > 0) {
        await agent.protect(protectSet);
        protectedSet = protectSet;
      }
      const tProtected = now();
      stage = "device-state";
      const dsPath = join(vm.runDir, `engine-devstate-${epoch}`);
      await vm.saveDeviceState(dsPath);
      const tSaved = now();
      if (this.#ctx.onPaused) await this.#ctx.onPaused(epoch);
      stage = "resume";
      const tCont0 = now();
      await vm.resume();
      paused = false;
      const tCont = now();

      stage = "save";
      // Pages copied in the pause (and COW copies made meanwhile) are waiting in staging.
      await this.#drainAll(writer, counts);
      const inPauseDrained = counts.copy;
      if (protectedSet)
        await this.#copyInBatches(protectedSet, writer, counts, true, this.#params.batch ?? 2048);
      const stream = await readFile(dsPath);
      await rm(dsPath, { force: true });
      writer.setDeviceState(
        encodeEnvelope({ ramIncluded: false, meta: { engine: this.spec, vm: vm.config }, stream }),
      );
      const tSaveEnd = now();
      stage = "commit";
      const commit = await writer.commit();
      if (this.#ctx.commitGlobal ?? true) await store.commitGlobal(epoch, [vm.name]);
      committed = true;
      const tDurable = now();
      stage = "confirm";
      // Only now is the data durable: the agent may forget these pages.
      await agent.confirm();
      protectedSet = undefined;
      const s1 = await agent.stats();
      this.#taken++;
      if (this.name === "cow" || this.name === "vpc") {
        this.#lastPrediction = {
          epoch,
          p: copySet ?? new PageSet(pageCount),
          faulted: counts.faulted,
          saveEndNs: tSaveEnd,
        };
      }
      const prev = this.#lastStats;
      this.#lastStats = s1;
      const trackingStallNs = s1.trackingFaults.totalNs - s0.trackingFaults.totalNs;
      const cowStallNs =
        s1.cowFaults.totalNs - s0.cowFaults.totalNs + (s1.stagingWaits.totalNs - s0.stagingWaits.totalNs);
      const pauseMs = ms(tCont - tStop);
      const stallMs = ms(trackingStallNs + cowStallNs);
      const peakStagingBytes = counts.peakSlots * info.pageSize;
      return {
        ok: true,
        vmId: vm.name,
        epoch,
        engine: this.spec,
        full,
        mode: info.mode,
        pauseMs,
        trackingStallMs: ms(trackingStallNs),
        cowStallMs: ms(cowStallNs),
        stallMs,
        soloDowntimeMs: pauseMs + stallMs,
        intervalTrackingStallMs: prev ? ms(s0.trackingFaults.totalNs - prev.trackingFaults.totalNs) : null,
        trackingFaults: s1.trackingFaults.count - s0.trackingFaults.count,
        cowFaults: s1.cowFaults.count - s0.cowFaults.count,
        pagesDirty,
        pagesToSave: toSave.count(),
        pagesCopiedInPause,
        pagesProtected,
        pagesCowCopied: counts.cow,
        pagesSavedAfterResume: counts.copy - inPauseDrained,
        liveRounds,
        pagesCopiedLive,
        peakStagingBytes,
        memoryOverhead: peakStagingBytes / info.ramBytes,
        durableMs: ms(tDurable - (this.name === "precopy" ? tStart : tStop)),
        checkpointBytes: commit.bytes,
        deviceStateBytes: stream.length,
        steps: {
          stopMs: ms(tStopped - tStop),
          harvestMs: ms(tHarvested - tStopped),
          copyMs: ms(tCopied - tHarvested),
          protectMs: ms(tProtected - tCopied),
          deviceStateMs: ms(tSaved - tProtected),
          contMs: ms(tCont - tCont0),
        },
        prediction,
        startedAt,
      };
    } catch (cause) {
      await this.#recover(paused, protectedSet);
      await writer?.abort().catch(() => undefined);
      throw new EngineCheckpointError(this.spec, epoch, stage, cause, { vmId: vm.name, committed });
    }
  }

  /** After a failure: the guest runs again, nothing stays protected, staging is empty. Best effort. */
  async #recover(paused: boolean, protectedSet: PageSet | undefined): Promise<void> {
    const { vm } = this.#ctx;
    if (paused && vm.state === "paused") await vm.resume().catch(() => undefined);
    if (this.#agent.state !== "open" || !this.#agent.attachment) return;
    try {
      const all = new PageSet(this.#agent.attachment.pageCount).fill();
      // Copying a protected page maps it back; the pages stay in the accumulated set (not
      // confirmed), so the next checkpoint saves them again.
      for (let i = 0; protectedSet && i < 64; i++) {
        const r = await this.#agent.copy(protectedSet, { onlyProtected: true });
        await this.#agent.releaseSet(all);
        if (r.pending === 0) break;
      }
      await this.#agent.releaseSet(all);
    } catch {
      // The agent is gone or broken; the next checkpoint reports it.
    }
  }

  /** Prediction of the previous checkpoint, scored against the interval just harvested. */
  #score(h: HarvestResult): PredictionMetrics {
    const lp = this.#lastPrediction!;
    let hits = 0;
    if (h.exact) {
      const seen = new PageSet(lp.p.pageCount);
      for (let i = 0; i < h.order.pages.length; i++) {
        const page = h.order.pages[i]!;
        if (h.order.timesNs[i]! <= lp.saveEndNs && lp.p.has(page) && !seen.has(page)) {
          seen.add(page);
          hits++;
        }
      }
    } else {
      hits = lp.p.intersectionCount(h.dirty);
    }
    const predicted = lp.p.count();
    const written = lp.faulted.count() + hits;
    return {
      epoch: lp.epoch,
      predicted,
      hits,
      written,
      precision: predicted > 0 ? hits / predicted : null,
      recall: written > 0 ? hits / written : null,
      approximate: !h.exact,
    };
  }

  async #openStaging(): Promise<void> {
    const path = this.#agent.attachment!.files.staging;
    if (this.#staging?.path === path) return;
    await this.close();
    const fh = await open(path, "r");
    const head = new Uint8Array(48);
    await fh.read(head, 0, 48, 0);
    this.#staging = { path, fh, header: decodeStagingHeader(head) };
  }

  /**
   * Copies `set` through staging into the writer, `batch` pages per agent call. With
   * `onlyProtected` (the COW saver) pages the fault handler already saved are skipped, and the
   * loop ends only when nothing of `set` is protected any more. Returns pages copied.
   */
  async #copyInBatches(
    set: PageSet,
    writer: EpochWriter,
    counts: SaveCounts,
    onlyProtected: boolean,
    batch: number,
  ): Promise<number> {
    let copied = 0;
    const chunk = new PageSet(set.pageCount);
    let inChunk = 0;
    const flush = async (): Promise<void> => {
      if (inChunk === 0) return;
      const r = await this.#agent.copy(chunk, { onlyProtected });
      copied += r.copied;
      await this.#drainAll(writer, counts);
      chunk.clear();
      inChunk = 0;
    };
    for (const { start, count } of set.toRanges()) {
      for (let p = start; p < start + count; ) {
        const n = Math.min(batch - inChunk, start + count - p);
        chunk.addRange(p, n);
        inChunk += n;
        p += n;
        if (inChunk >= batch) await flush();
      }
    }
    await flush();
    if (onlyProtected) {
      for (;;) {
        const r = await this.#agent.copy(set, { onlyProtected: true });
        copied += r.copied;
        await this.#drainAll(writer, counts);
        if (r.pending === 0 && r.copied === 0) break;
      }
    }
    return copied;
  }

  /** Moves every staged page into the writer and frees its slot. */
  async #drainAll(writer: EpochWriter, counts: SaveCounts): Promise<void> {
    const st = this.#staging!;
    const ps = st.header.pageSize;
    const slots = (await this.#agent.stagedSlots()).sort((a, b) => a.slot - b.slot);
    counts.peakSlots = Math.max(counts.peakSlots, slots.length);
    for (let c = 0; c < slots.length; c += DRAIN_CHUNK) {
      const part = slots.slice(c, c + DRAIN_CHUNK);
      const data = Buffer.allocUnsafe(part.length * ps);
      const pages = new Uint32Array(part.length);
      for (let i = 0; i < part.length; ) {
        let j = i + 1;
        while (j < part.length && part[j]!.slot === part[j - 1]!.slot + 1) j++;
        await st.fh.read(data, i * ps, (j - i) * ps, st.header.dataOffset + part[i]!.slot * ps);
        i = j;
      }
      part.forEach((s, i) => {
        pages[i] = s.page;
        if (s.source === "cow") {
          counts.cow++;
          counts.faulted.add(s.page);
        } else counts.copy++;
      });
      await writer.writePages(pages, data);
      await this.#agent.release(part.map((s) => s.slot));
    }
  }
}
