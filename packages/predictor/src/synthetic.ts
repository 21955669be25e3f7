/**
 * Synthetic dirty traces for tests and for trying strategies without a VM. Deterministic for a
 * given seed. Each interval lists (page, first-write time) pairs; the generator keeps the earliest
 * write of each page and emits D plus the exact first-write order (sync) or classes (async).
 */
import type { DirtyTraceHeader, DirtyTraceRecord, FirstWriteOrder, TrackingMode } from "@vpc/pageset";
import { PageSet } from "@vpc/pageset";
import { PredictorError } from "./errors.js";

export type Workload = "hot-set" | "strided" | "phases" | "random";
export const WORKLOADS: readonly Workload[] = ["hot-set", "strided", "phases", "random"];

export interface SyntheticOptions {
  workload: Workload;
  pageCount: number;
  intervals: number;
  seed?: number;
  intervalNs?: number;
  mode?: TrackingMode;
  /** hot-set, phases: size of the hot set (default pageCount / 16). */
  hotPages?: number;
  /** hot-set, phases: probability that a hot page is written in an interval (default 0.95). */
  hotProb?: number;
  /** hot-set, phases: hot pages are first written within this fraction of the interval (default 0.1). */
  hotEarly?: number;
  /** hot-set, phases: random pages written at random times each interval (default pageCount / 64). */
  noisePages?: number;
  /** phases: intervals per phase; each phase has a new hot set (default 5). */
  phaseLength?: number;
  /** strided: pages the sweep advances per interval (default pageCount / 16). */
  stride?: number;
  /** strided: pages written per interval, in ascending order over the interval (default stride). */
  width?: number;
  /** random: pages written per interval (default pageCount / 8). */
  writePages?: number;
}

/** mulberry32: small, fast, good enough for test data. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `count` distinct random pages (partial Fisher–Yates). */
function samplePages(pageCount: number, count: number, rand: () => number): Uint32Array {
  const all = new Uint32Array(pageCount);
  for (let i = 0; i < pageCount; i++) all[i] = i;
  const n = Math.min(count, pageCount);
  for (let i = 0; i < n; i++) {
    const j = i + Math.floor(rand() * (pageCount - i));
    const t = all[i]!;
    all[i] = all[j]!;
    all[j] = t;
  }
  return all.slice(0, n);
}

function check(cond: boolean, message: string): void {
  if (!cond) throw new PredictorError("INVALID_ARGUMENT", message);
}

/** Builds D and the order from write events (page, ns offset); the earliest write of a page wins. */
function buildInterval(
  pageCount: number,
  writes: { pages: number[]; times: number[] },
  mode: TrackingMode,
  intervalNs: number,
): { dirty: PageSet; order: FirstWriteOrder } {
  const first = new Map<number, number>();
  for (let i = 0; i < writes.pages.length; i++) {
    const p = writes.pages[i]!;
    const t = Math.floor(writes.times[i]!);
    const prev = first.get(p);
    if (prev === undefined || t < prev) first.set(p, t);
  }
  const sorted = [...first.entries()].sort((a, b) => a[1] - b[1] || a[0] - b[0]);
  const dirty = new PageSet(pageCount);
  for (const [p] of sorted) dirty.add(p);
  if (mode === "sync") {
    return {
      dirty,
      order: {
        kind: "exact",
        pages: Uint32Array.from(sorted, ([p]) => p),
        offsetsNs: Float64Array.from(sorted, ([, t]) => t),
      },
    };
  }
  // Async: timed peeks at 1%, 10%, 50% and 100% of the interval, as cumulative classes.
  const classes = [0.01, 0.1, 0.5, 1].map((f) => {
    const thresholdNs = Math.round(f * intervalNs);
    const pages = new PageSet(pageCount);
    for (const [p, t] of sorted) {
      if (t > thresholdNs) break;
      pages.add(p);
    }
    return { thresholdNs, pages };
  });
  return { dirty, order: { kind: "classes", classes } };
}

export interface SyntheticTrace {
  header: DirtyTraceHeader;
  records: DirtyTraceRecord[];
}

export function generateTrace(options: SyntheticOptions): SyntheticTrace {
  const { workload, pageCount, intervals } = options;
  check(WORKLOADS.includes(workload), `unknown workload "${workload}" (known: ${WORKLOADS.join(", ")})`);
  check(
    Number.isInteger(pageCount) && pageCount >= 64,
    `pageCount must be an integer >= 64, got ${pageCount}`,
  );
  check(
    Number.isInteger(intervals) && intervals >= 1,
    `intervals must be a positive integer, got ${intervals}`,
  );
  const seed = options.seed ?? 1;
  const intervalNs = options.intervalNs ?? 1e9;
  const mode = options.mode ?? "sync";
  const rand = rng(seed);
  const hotPages = options.hotPages ?? Math.floor(pageCount / 16);
  const hotProb = options.hotProb ?? 0.95;
  const hotEarly = options.hotEarly ?? 0.1;
  const noisePages = options.noisePages ?? Math.floor(pageCount / 64);
  const phaseLength = options.phaseLength ?? 5;
  const stride = options.stride ?? Math.floor(pageCount / 16);
  const width = options.width ?? stride;
  const writePages = options.writePages ?? Math.floor(pageCount / 8);
  check(hotPages >= 0 && hotPages <= pageCount, "hotPages must be in [0, pageCount]");
  check(
    hotProb >= 0 && hotProb <= 1 && hotEarly > 0 && hotEarly <= 1,
    "hotProb in [0, 1], hotEarly in (0, 1]",
  );
  check(phaseLength >= 1 && width >= 0 && width <= pageCount && writePages >= 0, "bad workload size");

  const header: DirtyTraceHeader = {
    pageSize: 4096,
    pageCount,
    guestRamBytes: pageCount * 4096,
    trackingMode: mode,
    metadata: { workload, generator: "@vpc/predictor", seed, options: { ...options } },
  };
  const records: DirtyTraceRecord[] = [];
  let hot = samplePages(pageCount, hotPages, rand);
  for (let i = 0; i < intervals; i++) {
    const pages: number[] = [];
    const times: number[] = [];
    const write = (p: number, t: number) => {
      pages.push(p);
      times.push(t);
    };
    if (workload === "hot-set" || workload === "phases") {
      if (workload === "phases" && i > 0 && i % phaseLength === 0)
        hot = samplePages(pageCount, hotPages, rand);
      for (const p of hot) if (rand() < hotProb) write(p, rand() * hotEarly * intervalNs);
      for (let j = 0; j < noisePages; j++) write(Math.floor(rand() * pageCount), rand() * intervalNs);
    } else if (workload === "strided") {
      const base = (i * stride) % pageCount;
      for (let j = 0; j < width; j++) write((base + j) % pageCount, (j / Math.max(1, width)) * intervalNs);
    } else {
      for (let j = 0; j < writePages; j++) write(Math.floor(rand() * pageCount), rand() * intervalNs);
    }
    const { dirty, order } = buildInterval(pageCount, { pages, times }, mode, intervalNs);
    const startNs = BigInt(i) * BigInt(Math.round(intervalNs));
    records.push({ epoch: i + 1, startNs, endNs: startNs + BigInt(Math.round(intervalNs)), dirty, order });
  }
  return { header, records };
}
