/**
 * The engines that run on the dirty-log agent: stop-copy, cow, vpc and precopy (ARCHITECTURE.md §4).
 * One class; the engine kind only decides which pages are copied in the pause, which are
 * write-protected for the saver, and whether live rounds come first. See docs/engines.md.
 *
 * The pause is two things at once: one agent call (harvest → copy → protect, `checkpoint`) and
 * QEMU's device-state migration into memory. Everything else — the prediction, the pre-pause
 * window, reading the sets, scoring, the saver, storing — happens before `stop` or after `cont`.
 */

import { setTimeout as sleep } from "node:timers/promises";
import type {
  AgentStats,
  CheckpointReply,
  CheckpointRequest,
  CheckpointSets,
  DirtyLogClient,
} from "@vpc/dirty-log";
import { PageSet } from "@vpc/pageset";
import { PageHistory, parseStrategy, type Strategy } from "@vpc/predictor";
import type { EpochWriter } from "@vpc/storage";
import { CheckpointError } from "../errors.js";
import { encodeEnvelope } from "./envelope.js";
import { EngineCheckpointError } from "./errors.js";
import {
  cheapestPlan,
  DEFAULT_PLAN_COSTS,
  judgingWindowMs,
  type PlanCosts,
  planCostsInHindsight,
  type SaveWindow,
  scorePrediction,
  updateCost,
  type VpcPlan,
  writtenDuringSave,
} from "./prediction.js";
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
/** Poll interval while a save with nothing left to copy holds its window open. */
const IDLE_SAVE_POLL_MS = 10;
/** Fewer pages than this in a step give no per-page cost worth learning from. */
const MIN_PAGES_FOR_COST = 64;

const now = (): bigint => process.hrtime.bigint();
const ms = (ns: bigint | number): number => Number(ns) / 1e6;

interface SaveCounts {
  cow: number;
  cowOnRead: number;
  copy: number;
  peakSlots: number;
  /** Protected pages saved by a COW fault on a write (W's faulted part), and on a read. */
  faulted: PageSet;
  faultedOnRead: PageSet;
}

/** What the next checkpoint needs of this one to score its prediction and learn. */
interface LastCheckpoint {
  readonly epoch: number;
  /** P ∩ D: pages copied in the pause (vpc); empty for cow. */
  readonly copied: PageSet;
  /** S: the pages this checkpoint saved (vpc only: what its plan is judged on). */
  readonly saveSet: PageSet | undefined;
  readonly faulted: PageSet;
  readonly faultedOnRead: PageSet;
  /** The save window, when a saver ran after `cont` (cow, vpc). */
  readonly save: SaveWindow | undefined;
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
  #last: LastCheckpoint | undefined;
  /** vpc with adapt=1: the plan of the next pause, the costs it was chosen by, and P for it. */
  #plan: VpcPlan = "predict";
  /** The modelled costs (ns) #plan was chosen by. */
  #planCosts: Record<VpcPlan, number> | undefined;
  #costs: PlanCosts = DEFAULT_PLAN_COSTS;
  #nextPrediction: PageSet | undefined;

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

  /** Holds nothing open: the agent's client owns the staging file. */
  async close(): Promise<void> {}

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
    let paused = false;
    let protectedPages = 0;
    let committed = false;
    try {
      writer = await store.beginEpoch(vm.name, epoch, {
        guestRamBytes: info.ramBytes,
        pageSize: info.pageSize,
        full,
      });
      await vm.prepareDeviceState();
      stage = "stats";
      const s0 = await agent.stats();
      const counts: SaveCounts = {
        cow: 0,
        cowOnRead: 0,
        copy: 0,
        peakSlots: 0,
        faulted: new PageSet(pageCount),
        faultedOnRead: new PageSet(pageCount),
      };

      // precopy: live rounds of harvest + copy while the guest runs.
      let liveRounds = 0;
      let pagesCopiedLive = 0;
      let request: CheckpointRequest;
      let requestSet: PageSet | undefined;
      const tStart = now();
      if (this.name === "precopy") {
        stage = "live";
        if (!s0.armed) await agent.arm();
        let set = full ? new PageSet(pageCount).fill() : (await agent.harvest()).accumulated;
        for (;;) {
          pagesCopiedLive += await this.#copyLive(set, writer, counts, this.#params.batch ?? 2048);
          liveRounds++;
          set = (await agent.harvest()).dirty;
          if (liveRounds >= (this.#params.rounds ?? 4) || set.count() < (this.#params.threshold ?? 512))
            break;
        }
        // The last round's dirty set was harvested but not copied: the pause owes it too.
        request = { plan: "copy-all", dirtyOnly: true, addSet: true };
        requestSet = set;
        counts.copy = 0;
      } else if (this.name === "stop-copy") {
        request = { plan: "copy-all", full };
      } else if (this.name === "cow") {
        request = { plan: "protect-all", full };
      } else {
        stage = "predict";
        // cow: P empty; copy-all: fallback 0 copies the whole save set, whatever P covers.
        const plan = full ? "predict" : this.#plan;
        request = {
          plan: "predict",
          full,
          front: (this.#params.front ?? 0) / 100,
          fallback: plan === "copy-all" ? 0 : (this.#params.fallback ?? 101) / 100,
        };
        requestSet = plan === "predict" ? this.#predictBase(pageCount) : new PageSet(pageCount);
        const windowMs = this.#params.window ?? 0;
        if (!full && windowMs > 0 && plan === "predict") {
          await agent.mark();
          await sleep(windowMs);
        }
      }

      stage = "pause";
      const tStop = now();
      await vm.pause();
      paused = true;
      const tStopped = now();
      stage = "checkpoint";
      // Device state and the agent's work run side by side; x-ignore-shared keeps QEMU off guest RAM.
      let tAgent = tStopped;
      let tDevice = tStopped;
      const deviceState = vm.captureDeviceState().then((stream) => {
        tDevice = now();
        return stream;
      });
      deviceState.catch(() => undefined);
      const reply: CheckpointReply = await agent.checkpoint(request, requestSet).then((r) => {
        tAgent = now();
        return r;
      });
      protectedPages = reply.protected;
      stage = "device-state";
      const stream = await deviceState;
      if (this.#ctx.onPaused) await this.#ctx.onPaused(epoch);
      stage = "resume";
      const tCont0 = now();
      await vm.resume();
      paused = false;
      const tCont = now();

      stage = "save";
      const sets = this.name === "stop-copy" ? undefined : await agent.checkpointSets(reply);
      const usedPlan = this.name === "vpc" ? (full ? "predict" : this.#plan) : undefined;
      const usedPlanCosts = usedPlan && !full ? this.#planCosts : undefined;
      const { prediction, judged } = this.#learn(sets, reply);
      let save: (SaveWindow & { startNs: bigint }) | undefined;
      let judgingMs = 0;
      if (this.name === "cow" || this.name === "vpc") {
        // The saver also runs with nothing protected: its end-of-save peek is what the next
        // checkpoint learns from and scores against; after copy-all it is held open to judge it.
        if (usedPlan === "copy-all" && !full) judgingMs = judgingWindowMs(reply.toSave, this.#costs);
        await agent.startSave(this.name === "vpc" ? this.#saveFirst(pageCount) : undefined, {
          minWindowMs: Math.max(this.#params.window ?? 0, judgingMs),
          maxInUse: Math.ceil((pageCount * (this.#params.buffer ?? 0)) / 1000),
        });
        save = await this.#drainWhileSaving(writer, counts);
      } else {
        await this.#drainAll(writer, counts);
      }
      const inPauseDrained = reply.copied;
      const savedAfterResume = counts.copy - inPauseDrained;
      writer.setDeviceState(
        encodeEnvelope({ ramIncluded: false, meta: { engine: this.spec, vm: vm.config }, stream }),
      );
      if (this.#ctx.channelLog !== undefined) {
        stage = "channel log";
        writer.setChannelLog(await this.#ctx.channelLog(epoch));
      }
      stage = "commit";
      const commit = await writer.commit();
      if (this.#ctx.commitGlobal ?? true) await store.commitGlobal(epoch, [vm.name]);
      committed = true;
      const tDurable = now();
      stage = "confirm";
      // Only now is the data durable: the agent may forget these pages.
      await agent.confirm();
      protectedPages = 0;
      const s1 = await agent.stats();
      this.#taken++;
      this.#last =
        this.name === "cow" || this.name === "vpc"
          ? {
              epoch,
              copied: sets?.copied ?? new PageSet(pageCount),
              saveSet:
                this.name === "vpc" ? (full ? new PageSet(pageCount).fill() : sets?.accumulated) : undefined,
              faulted: counts.faulted,
              faultedOnRead: counts.faultedOnRead,
              save,
            }
          : undefined;
      const prev = this.#lastStats;
      this.#lastStats = s1;
      const trackingStallNs = s1.trackingFaults.totalNs - s0.trackingFaults.totalNs;
      const cowStallNs =
        s1.cowFaults.totalNs - s0.cowFaults.totalNs + (s1.stagingWaits.totalNs - s0.stagingWaits.totalNs);
      if (this.name === "vpc") {
        this.#costs = {
          copyNsPerPage: updateCost(
            this.#costs.copyNsPerPage,
            reply.copied >= MIN_PAGES_FOR_COST ? reply.copyNs / reply.copied : null,
          ),
          protectNsPerPage: updateCost(
            this.#costs.protectNsPerPage,
            reply.protected >= MIN_PAGES_FOR_COST ? reply.protectNs / reply.protected : null,
          ),
          faultNs: updateCost(
            this.#costs.faultNs,
            counts.cow + counts.cowOnRead > 0 ? Number(cowStallNs) / (counts.cow + counts.cowOnRead) : null,
          ),
          harvestNs: updateCost(this.#costs.harvestNs, reply.armed ? null : reply.harvestNs),
          // Only a save the agent's call hardly overlapped: on 2 cores a long copy beside it slows
          // it (engine bench: 8.5–10 ms median beside a protect, 12–18 ms beside copy-all), and
          // learning the slowed save would make copies look free.
          deviceStateNs: updateCost(
            this.#costs.deviceStateNs,
            2n * (tAgent - tStopped) <= tDevice - tStopped ? Number(tDevice - tStopped) : null,
          ),
          // Only a save that ended when its work did times the saver (not one held open).
          saveNsPerPage: updateCost(
            this.#costs.saveNsPerPage,
            save &&
              judgingMs === 0 &&
              (this.#params.window ?? 0) === 0 &&
              savedAfterResume >= MIN_PAGES_FOR_COST
              ? Number(save.endNs - save.startNs) / savedAfterResume
              : null,
          ),
        };
        this.#choosePlan(judged);
      }
      const pauseMs = ms(tCont - tStop);
      const stallMs = ms(trackingStallNs + cowStallNs);
      const peakStagingBytes = counts.peakSlots * info.pageSize;
      const pagesToSave = reply.toSave;
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
        cowFaultsOnRead: s1.cowFaultsOnRead - s0.cowFaultsOnRead,
        pagesDirty: reply.armed ? pageCount : reply.dirty,
        pagesToSave,
        pagesPredicted: this.name === "vpc" ? reply.predicted : null,
        pagesInWindow: this.name === "vpc" ? reply.window : null,
        fellBack: this.name === "vpc" ? reply.fellBack : null,
        vpcPlan: usedPlan ?? null,
        vpcPlanCostsMs: usedPlanCosts
          ? {
              predict: ms(usedPlanCosts.predict),
              cow: ms(usedPlanCosts.cow),
              "copy-all": ms(usedPlanCosts["copy-all"]),
            }
          : null,
        pagesCopiedInPause: reply.copied,
        pagesProtected: reply.protected,
        pagesCowCopied: counts.cow + counts.cowOnRead,
        pagesSavedAfterResume: savedAfterResume,
        copyNsPerPage: reply.copied > 0 ? reply.copyNs / reply.copied : null,
        protectNsPerPage: reply.protected > 0 ? reply.protectNs / reply.protected : null,
        saveMs: save ? ms(save.endNs - save.startNs) : null,
        liveRounds,
        pagesCopiedLive,
        peakStagingBytes,
        memoryOverhead: peakStagingBytes / info.ramBytes,
        durableMs: ms(tDurable - (this.name === "precopy" ? tStart : tStop)),
        checkpointBytes: commit.bytes,
        deviceStateBytes: stream.length,
        steps: {
          stopMs: ms(tStopped - tStop),
          agentMs: ms(tAgent - tStopped),
          harvestMs: reply.harvestNs / 1e6,
          planMs: reply.planNs / 1e6,
          copyMs: reply.copyNs / 1e6,
          protectMs: reply.protectNs / 1e6,
          deviceStateMs: ms(tDevice - tStopped),
          contMs: ms(tCont - tCont0),
        },
        prediction,
        startedAt,
      };
    } catch (cause) {
      await this.#recover(paused, protectedPages > 0);
      await writer?.abort().catch(() => undefined);
      throw new EngineCheckpointError(this.spec, epoch, stage, cause, { vmId: vm.name, committed });
    }
  }

  /**
   * vpc, before `stop`: P from the history (the agent adds the pre-pause window) — the one the
   * plan was chosen with, when there is one. Empty on the full epoch and before anything was learnt.
   */
  #predictBase(pageCount: number): PageSet {
    const cached = this.#nextPrediction;
    this.#nextPrediction = undefined;
    return cached ?? this.#predictFromHistory(pageCount);
  }

  /** The strategy's P from the history as it is now (empty before anything was learnt). */
  #predictFromHistory(pageCount: number): PageSet {
    if (!this.#history || this.#history.length === 0) return new PageSet(pageCount);
    return this.#strategy!.predict(this.#history);
  }

  /**
   * vpc, adapt=1: the next pause's plan, the cheapest of predict / cow / copy-all on the last
   * checkpoint seen in hindsight (its S and W, and the P the strategy would give now), by the
   * per-unit costs measured so far. Every plan is judged, copy-all too (through its judging
   * window), so no pause is spent trying a plan out.
   */
  #choosePlan(judged: { saveSet: PageSet; wouldFault: PageSet } | undefined): void {
    if ((this.#params.adapt ?? 1) === 0 || !judged) return;
    // Fresh, not a P cached for a pause that did not use it (cow, copy-all): that one is stale.
    const predicted = this.#predictFromHistory(judged.saveSet.pageCount);
    this.#nextPrediction = predicted;
    this.#planCosts = planCostsInHindsight({ ...judged, predicted }, this.#costs);
    this.#plan = cheapestPlan(this.#planCosts);
  }

  /** vpc: the saver takes first the pages the history says fault (those P left out). */
  #saveFirst(pageCount: number): PageSet | undefined {
    const h = this.#history;
    if (!h || h.length === 0) return undefined;
    const out = new PageSet(pageCount);
    for (let age = 0; age < h.length; age++) out.orInPlace(h.dirty(age));
    return out;
  }

  /**
   * After `cont`: scores the previous checkpoint's prediction against the writes made during its
   * save (now harvested), and feeds the history: with learn=1 the pages that faulted or would have
   * (W, plus pages whose read faulted: copying them avoids that stall too), with learn=0 whole dirty
   * sets (the baseline). cow is scored too: its P is empty, its W the faults.
   */
  #learn(
    sets: CheckpointSets | undefined,
    reply: CheckpointReply,
  ): {
    prediction: PredictionMetrics | null;
    judged: { saveSet: PageSet; wouldFault: PageSet } | undefined;
  } {
    const last = this.#last;
    this.#last = undefined;
    if (!sets || reply.armed) return { prediction: null, judged: undefined };
    const pageCount = sets.dirty.pageCount;
    const early = last?.save ? writtenDuringSave(pageCount, sets.order, reply.exact, last.save) : undefined;
    // W plus the pages whose read faulted (copying them avoids that stall too).
    const wouldFault =
      last && early
        ? last.copied.and(early).orInPlace(last.faulted).orInPlace(last.faultedOnRead)
        : undefined;
    if (this.name === "vpc") {
      this.#history ??= new PageHistory(pageCount, Math.max(1, this.#strategy!.depth));
      if ((this.#params.learn ?? 1) === 0) {
        this.#history.push({ dirty: sets.dirty, order: { kind: "none" } });
      } else if (wouldFault) {
        this.#history.push({ dirty: wouldFault, order: { kind: "none" } });
      }
    }
    const judged = last?.saveSet && wouldFault ? { saveSet: last.saveSet, wouldFault } : undefined;
    const prediction = last && early ? scorePrediction(last.epoch, last.copied, last.faulted, early) : null;
    return { prediction, judged };
  }

  /** After a failure: the guest runs again, nothing stays protected, staging is empty. Best effort. */
  async #recover(paused: boolean, anyProtected: boolean): Promise<void> {
    const { vm } = this.#ctx;
    if (paused && vm.state === "paused") await vm.resume().catch(() => undefined);
    if (this.#agent.state !== "open" || !this.#agent.attachment) return;
    try {
      const all = new PageSet(this.#agent.attachment.pageCount).fill();
      // A saver still running finishes on its own; wait for it so the next checkpoint may start.
      for (let i = 0; i < 2000 && (await this.#agent.saveStatus()).saving; i++) {
        await this.#agent.releaseSet(all);
        await sleep(1);
      }
      // Copying a protected page maps it back; the pages stay in the accumulated set (not
      // confirmed), so the next checkpoint saves them again.
      for (let i = 0; anyProtected && i < 64; i++) {
        const r = await this.#agent.copy(all, { onlyProtected: true });
        await this.#agent.releaseSet(all);
        if (r.pending === 0) break;
      }
      await this.#agent.releaseSet(all);
    } catch {
      // The agent is gone or broken; the next checkpoint reports it.
    }
  }

  /** precopy's live rounds: copies `set` through staging into the writer, `batch` pages per agent call. */
  async #copyLive(set: PageSet, writer: EpochWriter, counts: SaveCounts, batch: number): Promise<number> {
    let copied = 0;
    const chunk = new PageSet(set.pageCount);
    let inChunk = 0;
    const flush = async (): Promise<void> => {
      if (inChunk === 0) return;
      const r = await this.#agent.copy(chunk);
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
    return copied;
  }

  /**
   * Drains staging into the writer while the agent's saver runs, until it has finished and
   * staging is empty. Returns the save window the agent reported.
   */
  async #drainWhileSaving(
    writer: EpochWriter,
    counts: SaveCounts,
  ): Promise<SaveWindow & { startNs: bigint }> {
    for (;;) {
      const drained = await this.#drainAll(writer, counts);
      const st = await this.#agent.saveStatus();
      if (!st.saving && st.inUse === 0)
        return { startNs: st.startNs, endNs: st.endNs, endClass: st.endClass };
      // Nothing protected and nothing staged: the saver only holds its window open (a judging
      // window, `window=`), and no page can arrive; poll gently beside the running guest.
      const idle = st.pending === 0 && st.inUse === 0;
      if (drained === 0) await sleep(idle ? IDLE_SAVE_POLL_MS : 1);
    }
  }

  /**
   * Moves the staged pages into the writer, DRAIN_CHUNK at a time, freeing their slots only once
   * the writer has them; stops after a batch that held everything staged. Returns the pages moved.
   */
  async #drainAll(writer: EpochWriter, counts: SaveCounts): Promise<number> {
    let moved = 0;
    for (;;) {
      const batch = await this.#agent.readStaged(DRAIN_CHUNK);
      counts.peakSlots = Math.max(counts.peakSlots, batch.staged);
      if (batch.pages.length === 0) return moved;
      batch.pages.forEach((page, i) => {
        const source = batch.sources[i];
        if (source === "cow") {
          counts.cow++;
          counts.faulted.add(page);
        } else if (source === "cow-read") {
          counts.cowOnRead++;
          counts.faultedOnRead.add(page);
        } else counts.copy++;
      });
      await writer.writePages(batch.pages, batch.data);
      await this.#agent.releaseStaged(batch);
      moved += batch.pages.length;
      if (batch.pages.length === batch.staged) return moved;
    }
  }
}
