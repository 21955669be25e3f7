import { PageSet } from "@vpc/pageset";
import type { EarlyWindow, PageHistory } from "./history.js";
import { weightedAtLeast } from "./internal/bitslice.js";
import type { RankedTier, Strategy } from "./strategy.js";

function specOf(kind: string, params: Record<string, number>, inner?: Strategy): string {
  const body = Object.entries(params)
    .map(([k, v]) => `${k}=${v}`)
    .join(",");
  return `${kind}${inner === undefined ? "" : `(${inner.spec})`}${body === "" ? "" : `:${body}`}`;
}

/** Pages whose weighted count over `planes` reaches `threshold`, as a new set. */
function atLeast(pageCount: number, planes: Uint32Array[], weights: number[], threshold: number): PageSet {
  const out = new PageSet(pageCount);
  if (planes.length > 0) weightedAtLeast(planes, weights, threshold, out.words);
  return out;
}

/**
 * Tiers for a count-style strategy: pages with count c for c = max .. min, confidence c / denom.
 * Each level is one word-parallel threshold pass.
 */
function countTiers(pageCount: number, planes: Uint32Array[], min: number, denom: number): RankedTier[] {
  const ones = planes.map(() => 1);
  const tiers: RankedTier[] = [];
  let above = new PageSet(pageCount);
  for (let c = planes.length; c >= min; c--) {
    const reach = atLeast(pageCount, planes, ones, c);
    const tier = reach.andNot(above);
    if (!tier.isEmpty()) tiers.push({ pages: tier, confidence: c / denom });
    above = reach;
  }
  return tiers;
}

/** `last`: P = pages written in the last interval (D itself). */
export function lastStrategy(): Strategy {
  return {
    kind: "last",
    spec: "last",
    params: {},
    depth: 1,
    predict: (h) => (h.length === 0 ? new PageSet(h.pageCount) : h.dirty(0).clone()),
    rank: (h) => (h.length === 0 ? [] : [{ pages: h.dirty(0).clone(), confidence: 1 }]),
  };
}

/** `k-of-n`: P = pages written in at least k of the last n intervals. */
export function kOfNStrategy(params: { k: number; n: number }): Strategy {
  const { k, n } = params;
  const ones = Array.from({ length: n }, () => 1);
  return {
    kind: "k-of-n",
    spec: specOf("k-of-n", { k, n }),
    params: { k, n },
    depth: n,
    predict: (h) => atLeast(h.pageCount, h.recentWords(n), ones, k),
    rank: (h) => countTiers(h.pageCount, h.recentWords(n), k, n),
  };
}

/**
 * `early-writers`: P = pages that were early writers (see EarlyWindow) in at least minHits of the
 * last m intervals. Set `windowMs` to use a time window instead of `fraction`.
 */
export function earlyWritersStrategy(params: {
  m: number;
  minHits: number;
  fraction?: number;
  windowMs?: number;
}): Strategy {
  const { m, minHits } = params;
  const window: EarlyWindow =
    params.windowMs === undefined
      ? { fraction: params.fraction ?? 0.5 }
      : { windowNs: params.windowMs * 1e6 };
  const shown: Record<string, number> =
    params.windowMs === undefined
      ? { fraction: params.fraction ?? 0.5, m, minHits }
      : { windowMs: params.windowMs, m, minHits };
  const planes = (h: PageHistory): Uint32Array[] => {
    const out: Uint32Array[] = [];
    for (let age = 0; age < Math.min(m, h.length); age++) out.push(h.early(age, window).words);
    return out;
  };
  return {
    kind: "early-writers",
    spec: specOf("early-writers", shown),
    params: shown,
    depth: m,
    predict: (h) => {
      const p = planes(h);
      return atLeast(
        h.pageCount,
        p,
        p.map(() => 1),
        minHits,
      );
    },
    rank: (h) => countTiers(h.pageCount, planes(h), minHits, m),
  };
}

/** Fixed-point scale of recency weights: scores are compared in units of 1/1024. */
const RECENCY_SCALE = 1024;
const RECENCY_TIERS = 4;

/**
 * `recency`: score(p) = sum over the last n intervals of decay^age for each interval that wrote p
 * (age 0 = last interval, weight 1); P = pages with score >= threshold. Weights and threshold are
 * rounded to multiples of 1/1024 so the comparison runs word-parallel on bit-planes.
 */
export function recencyStrategy(params: { decay: number; threshold: number; n: number }): Strategy {
  const { decay, threshold, n } = params;
  const weights = Array.from({ length: n }, (_, age) => Math.round(decay ** age * RECENCY_SCALE));
  const q = Math.max(1, Math.round(threshold * RECENCY_SCALE));
  const select = (h: PageHistory, level: number): PageSet => {
    const planes = h.recentWords(n);
    return atLeast(h.pageCount, planes, weights.slice(0, planes.length), level);
  };
  return {
    kind: "recency",
    spec: specOf("recency", { decay, threshold, n }),
    params: { decay, threshold, n },
    depth: n,
    predict: (h) => select(h, q),
    rank: (h) => {
      // Tiers at evenly spaced score levels from the maximum possible score down to the threshold.
      const max = weights.slice(0, Math.min(n, h.length)).reduce((a, b) => a + b, 0);
      const tiers: RankedTier[] = [];
      if (max < q) return tiers;
      let above = new PageSet(h.pageCount);
      for (let j = RECENCY_TIERS - 1; j >= 0; j--) {
        const level = Math.round(q + ((max - q) * j) / Math.max(1, RECENCY_TIERS - 1));
        const reach = select(h, level);
        const tier = reach.andNot(above);
        if (!tier.isEmpty()) tiers.push({ pages: tier, confidence: level / max });
        above = reach;
      }
      return tiers;
    },
  };
}

/**
 * `cost-aware(inner)`: takes the inner strategy's tiers, keeps only pages of the last dirty set
 * (only those are copied at the checkpoint), drops tiers whose confidence is below the break-even
 * probability copyUs / faultUs (copying them costs more than the faults they save on average), and
 * caps |P| at budgetUs / copyUs pages, most confident tiers first (a partial tier is cut in
 * ascending page order).
 */
export function costAwareStrategy(
  inner: Strategy,
  params: { budgetUs: number; copyUs: number; faultUs: number },
): Strategy {
  const { budgetUs, copyUs, faultUs } = params;
  const breakEven = copyUs / faultUs;
  const cap = Math.floor(budgetUs / copyUs);
  const rank = (h: PageHistory): RankedTier[] => {
    if (h.length === 0) return [];
    const d = h.dirty(0);
    const out: RankedTier[] = [];
    let room = cap;
    for (const t of inner.rank(h)) {
      if (t.confidence < breakEven || room === 0) break;
      const pages = t.pages.and(d);
      const n = pages.count();
      if (n === 0) continue;
      if (n <= room) {
        out.push({ pages, confidence: t.confidence });
        room -= n;
        continue;
      }
      const cut = PageSet.fromPages(h.pageCount, pages.toArray().subarray(0, room));
      out.push({ pages: cut, confidence: t.confidence });
      room = 0;
    }
    return out;
  };
  return {
    kind: "cost-aware",
    spec: specOf("cost-aware", params, inner),
    params,
    depth: inner.depth,
    rank,
    predict: (h) => {
      const p = new PageSet(h.pageCount);
      for (const t of rank(h)) p.orInPlace(t.pages);
      return p;
    },
  };
}
