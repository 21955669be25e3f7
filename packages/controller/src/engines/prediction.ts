/**
 * What the vpc engine learns from and how its predictions are scored (pure: no I/O).
 *
 * The target of a prediction (ARCHITECTURE §2) is W = the pages that fault after resume: written
 * before the saver reached them. A page copied in the pause cannot fault, so W is measured the
 * same way for every engine: the protected pages that took a COW fault on a write, plus the
 * copied pages the guest wrote before the save ended (they would have faulted). "Before the save
 * ended" is exact in both tracking modes: sync mode times every first write; in async mode the
 * agent peeks (PAGEMAP_SCAN, no re-protect) the moment its saver finishes, so the order log's
 * classes up to that peek are exactly the pages written during the save.
 */
import type { FirstWrites } from "@vpc/dirty-log";
import { PageSet } from "@vpc/pageset";
import type { PredictionMetrics } from "./types.js";

/** The end of the save that followed a checkpoint, as the agent reported it. */
export interface SaveWindow {
  /** Agent clock (CLOCK_MONOTONIC ns) when the saver finished (and, async, peeked). */
  readonly endNs: bigint;
  /** Async mode: the order class of that peek; 0 when none was taken. */
  readonly endClass: number;
}

/** E: pages of an interval's order log first written before the previous save ended. */
export function writtenDuringSave(
  pageCount: number,
  order: FirstWrites,
  exact: boolean,
  save: SaveWindow,
): PageSet {
  const out = new PageSet(pageCount);
  const n = order.pages.length;
  for (let i = 0; i < n; i++) {
    const early = exact ? order.timesNs[i]! <= save.endNs : order.classes[i]! <= save.endClass;
    if (early) out.add(order.pages[i]!);
  }
  return out;
}

/**
 * Scores the prediction of checkpoint `epoch`: `copied` = P ∩ D (copied in the pause because
 * predicted), `faulted` = protected pages COW-faulted by a write, `early` = E of the interval that
 * followed. |W| = |faulted| + |copied ∩ early| (the two are disjoint: a copied page is not protected).
 */
export function scorePrediction(
  epoch: number,
  copied: PageSet,
  faulted: PageSet,
  early: PageSet,
): PredictionMetrics {
  const predicted = copied.count();
  const hits = copied.intersectionCount(early);
  const written = faulted.count() + hits;
  return {
    epoch,
    predicted,
    hits,
    written,
    precision: predicted > 0 ? hits / predicted : null,
    recall: written > 0 ? hits / written : null,
    approximate: false,
  };
}

/** What vpc does in the next pause: copy P and protect the rest, protect all (cow), or copy all. */
export type VpcPlan = "predict" | "cow" | "copy-all";

/** Per-unit costs inside the pause and after it, measured on earlier checkpoints (ns). */
export interface PlanCosts {
  readonly copyNsPerPage: number;
  readonly protectNsPerPage: number;
  readonly faultNs: number;
  /** The saver's pace after `cont`: save window ÷ pages it saved. */
  readonly saveNsPerPage: number;
  /** The agent's harvest, which every plan pays before it copies or protects. */
  readonly harvestNs: number;
  /**
   * QEMU's device-state save, which runs beside the agent's call: agent work shorter than it
   * costs the pause nothing.
   */
  readonly deviceStateNs: number;
}

/**
 * Until measured: FIELD-NOTES §6–8 (copy ~0.5 µs, zap in runs ~0.3 µs, a COW fault ~16 µs); the
 * saver's ~5 µs per page is the cow save window of the engine benchmark (119 ms for 24.6k pages).
 * Harvest and device state start at 0 (no overlap assumed) and are measured from the first pause.
 */
export const DEFAULT_PLAN_COSTS: PlanCosts = {
  copyNsPerPage: 500,
  protectNsPerPage: 300,
  faultNs: 16_000,
  saveNsPerPage: 5_000,
  harvestNs: 0,
  deviceStateNs: 0,
};

/** A copy-all checkpoint's judging window is capped so its commit is not held back for long. */
export const MAX_JUDGING_WINDOW_MS = 1000;

/**
 * After a copy-all pause nothing is protected, so nothing faults and W cannot be seen. Keeping the
 * save window open for as long as a saver would have needed for S (the end-of-save peek then
 * marks the pages written meanwhile) shows W all the same: copied ∩ written during that window.
 * It counts a page the saver would have reached before the write too, so it errs towards
 * copy-all, the plan that is never worse than stop-copy.
 */
export function judgingWindowMs(savePages: number, c: PlanCosts): number {
  return Math.min(MAX_JUDGING_WINDOW_MS, Math.ceil((savePages * c.saveNsPerPage) / 1e6));
}

/** One checkpoint in hindsight: its save set S, W (the pages that faulted or would have), and P. */
export interface PlanHindsight {
  readonly saveSet: PageSet;
  readonly wouldFault: PageSet;
  readonly predicted: PageSet;
}

/**
 * Modelled downtime (ns) of each plan on a checkpoint seen in hindsight: the pause, which lasts
 * as long as the longer of the agent's call (harvest, copies, protection) and the device-state
 * save beside it, plus the COW faults after `cont`. Copies that fit in the device-state save's
 * shadow are free, which is why copy-all often wins on this kind of machine.
 */
export function planCostsInHindsight(h: PlanHindsight, c: PlanCosts): Record<VpcPlan, number> {
  const s = h.saveSet.count();
  const copied = h.predicted.intersectionCount(h.saveSet);
  const w = h.wouldFault.count();
  const missed = w - h.wouldFault.intersectionCount(h.predicted);
  const pause = (agentWorkNs: number): number => Math.max(c.harvestNs + agentWorkNs, c.deviceStateNs);
  return {
    predict: pause(c.copyNsPerPage * copied + c.protectNsPerPage * (s - copied)) + c.faultNs * missed,
    cow: pause(c.protectNsPerPage * s) + c.faultNs * w,
    "copy-all": pause(c.copyNsPerPage * s),
  };
}

/**
 * The plan of least modelled downtime — so vpc is never worse than the better of stop-copy and cow
 * by more than the model's error. Ties go to predict (it keeps learning), then cow.
 */
export function cheapestPlan(costs: Record<VpcPlan, number>): VpcPlan {
  let best: VpcPlan = "predict";
  for (const p of ["cow", "copy-all"] as const) if (costs[p] < costs[best]) best = p;
  return best;
}

/** Moves a running per-unit cost towards a new measurement (a quarter of the way), if there is one. */
export function updateCost(old: number, measured: number | null): number {
  return measured === null || !Number.isFinite(measured) || measured <= 0 ? old : old + (measured - old) / 4;
}
