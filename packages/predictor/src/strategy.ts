import type { PageSet } from "@vpc/pageset";
import type { PageHistory } from "./history.js";

/** Pages of equal rank, with the strategy's estimate (0..1) that they are written early. */
export interface RankedTier {
  pages: PageSet;
  confidence: number;
}

/**
 * A prediction strategy: from the history of finished intervals, the set P of pages it expects to
 * be written soon after the next checkpoint. Strategies are pure: same history, same P.
 */
export interface Strategy {
  /** Registry name, e.g. "k-of-n". */
  readonly kind: string;
  /** Canonical spec with every parameter, e.g. "k-of-n:k=2,n=4"; `parseStrategy(spec)` rebuilds it. */
  readonly spec: string;
  readonly params: Readonly<Record<string, number>>;
  /** Number of most recent intervals the strategy looks at. */
  readonly depth: number;
  predict(history: PageHistory): PageSet;
  /**
   * P split into tiers, most confident first; the tiers are disjoint and their union is
   * `predict(history)`. Confidences are the strategy's own frequency estimates.
   */
  rank(history: PageHistory): RankedTier[];
}
