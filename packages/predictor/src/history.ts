import { type FirstWriteOrder, PageSet } from "@vpc/pageset";
import { PredictorError } from "./errors.js";

/** What the history keeps of one interval. */
export interface IntervalObservation {
  /** D: pages written in the interval. Copied into the history's bit-plane. */
  dirty: PageSet;
  /** First-write order the agent reported; kept by reference, so do not mutate it afterwards. */
  order: FirstWriteOrder;
}

/**
 * Which part of an interval's first-write order counts as "early":
 * - `{ fraction }`: the first fraction (0..1] of the ordered pages (exact order), or the largest
 *   class holding at most fraction × |D| pages (classes);
 * - `{ windowNs }`: pages first written within windowNs of the interval start (exact order), or
 *   the largest class whose threshold is <= windowNs (classes).
 * An interval without order (`kind: "none"`) has no early pages.
 */
export type EarlyWindow = { fraction: number } | { windowNs: number };

/** The early pages of one interval (see EarlyWindow). */
export function earlyPages(pageCount: number, obs: IntervalObservation, window: EarlyWindow): PageSet {
  const out = new PageSet(pageCount);
  const o = obs.order;
  if (o.kind === "exact") {
    let cut: number;
    if ("fraction" in window) {
      cut = Math.min(o.pages.length, Math.ceil(window.fraction * o.pages.length));
    } else {
      // Offsets never decrease: binary search for the first offset beyond the window.
      let lo = 0;
      let hi = o.offsetsNs.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (o.offsetsNs[mid]! <= window.windowNs) lo = mid + 1;
        else hi = mid;
      }
      cut = lo;
    }
    const w = out.words;
    for (let i = 0; i < cut; i++) {
      const p = o.pages[i]!;
      w[p >>> 5]! |= 1 << (p & 31);
    }
  } else if (o.kind === "classes") {
    const limit = "fraction" in window ? Math.floor(window.fraction * obs.dirty.count()) : 0;
    let chosen: PageSet | undefined;
    for (const c of o.classes) {
      const fits = "fraction" in window ? c.pages.count() <= limit : c.thresholdNs <= window.windowNs;
      if (!fits) break;
      chosen = c.pages;
    }
    if (chosen !== undefined) out.copyFrom(chosen);
  }
  return out;
}

function windowKey(w: EarlyWindow): string {
  return "fraction" in w ? `f${w.fraction}` : `t${w.windowNs}`;
}

/**
 * The last `depth` intervals, bit-sliced: one PageSet (bit-plane) per interval in a ring, so a push
 * is one copy pass and strategies combine planes word by word. Age 0 is the most recent interval.
 */
export class PageHistory {
  readonly pageCount: number;
  readonly depth: number;
  private readonly planes: PageSet[];
  private readonly orders: FirstWriteOrder[];
  /** Early-page sets per ring slot and window, computed on demand, dropped when the slot is reused. */
  private readonly earlyCache: Map<string, PageSet>[];
  private head = -1;
  private filled = 0;

  constructor(pageCount: number, depth: number) {
    if (!Number.isInteger(depth) || depth < 1 || depth > 64) {
      throw new PredictorError(
        "INVALID_ARGUMENT",
        `history depth must be an integer in [1, 64], got ${depth}`,
      );
    }
    this.pageCount = pageCount;
    this.depth = depth;
    this.planes = Array.from({ length: depth }, () => new PageSet(pageCount));
    this.orders = Array.from({ length: depth }, () => ({ kind: "none" }) as const);
    this.earlyCache = Array.from({ length: depth }, () => new Map());
  }

  /** Number of intervals held (at most depth). */
  get length(): number {
    return this.filled;
  }

  /** Records a finished interval, evicting the oldest when full. */
  push(obs: IntervalObservation): void {
    if (obs.dirty.pageCount !== this.pageCount) {
      throw new PredictorError(
        "PAGE_COUNT_MISMATCH",
        `interval has ${obs.dirty.pageCount} pages, history has ${this.pageCount}`,
      );
    }
    this.head = (this.head + 1) % this.depth;
    this.planes[this.head]!.copyFrom(obs.dirty);
    this.orders[this.head] = obs.order;
    this.earlyCache[this.head]!.clear();
    if (this.filled < this.depth) this.filled++;
  }

  private slot(age: number): number {
    if (!Number.isInteger(age) || age < 0 || age >= this.filled) {
      throw new PredictorError("INVALID_ARGUMENT", `age ${age} is outside the ${this.filled} intervals held`);
    }
    return (this.head - age + this.depth) % this.depth;
  }

  /** D of the interval `age` intervals ago (0 = most recent). Shared: do not mutate. */
  dirty(age: number): PageSet {
    return this.planes[this.slot(age)]!;
  }

  order(age: number): FirstWriteOrder {
    return this.orders[this.slot(age)]!;
  }

  /** The early pages of the interval `age` intervals ago. Cached: do not mutate. */
  early(age: number, window: EarlyWindow): PageSet {
    const s = this.slot(age);
    const key = windowKey(window);
    const cache = this.earlyCache[s]!;
    let set = cache.get(key);
    if (set === undefined) {
      set = earlyPages(this.pageCount, { dirty: this.planes[s]!, order: this.orders[s]! }, window);
      cache.set(key, set);
    }
    return set;
  }

  /** Word arrays of the `n` most recent planes, most recent first (n is capped at length). */
  recentWords(n: number): Uint32Array[] {
    const out: Uint32Array[] = [];
    for (let age = 0; age < Math.min(n, this.filled); age++) out.push(this.dirty(age).words);
    return out;
  }
}
