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
