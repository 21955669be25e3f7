import { type DirtyTraceRecord, PageSet } from "@vpc/pageset";
import { PredictorError } from "./errors.js";
import { earlyPages, PageHistory } from "./history.js";
import { DEFAULT_COPY_US, DEFAULT_FAULT_US } from "./registry.js";
import type { Strategy } from "./strategy.js";

/**
 * Cost model of one checkpoint (µs). Defaults: faultUs from FIELD-NOTES §6 (COW handler time
 * 15–16 µs per fault including the 4 KiB copy), protectUs from the same section (zapping a page
 * for COW, ~1.1 µs median); copyUs (copying one page into staging during the pause) must be
 * measured on the target machine — the default 1 µs is only an order of magnitude.
 */
export interface CostModel {
  /** Copying one page of P into the staging buffer during the pause. */
  copyUs: number;
  /** vCPU stall of one COW fault (trap, copy of the old page, resume). */
  faultUs: number;
  /** Protecting one page of D ∖ P during the pause. */
  protectUs: number;
  /** Fixed pause work every engine does (harvest, device state); added to every row. */
  basePauseUs: number;
  /**
   * Cost of protecting the whole guest range at once (sync-mode write-protect, FIELD-NOTES §6:
   * ~5 ms per 256 MiB). When set, protecting D ∖ P costs min(|D ∖ P| · protectUs, protectRangeUs),
   * as an engine can pick the cheaper per checkpoint.
   */
  protectRangeUs?: number;
}

export const DEFAULT_COSTS: Readonly<CostModel> = {
  copyUs: DEFAULT_COPY_US,
  faultUs: DEFAULT_FAULT_US,
  protectUs: 1.1,
  basePauseUs: 0,
};

/**
 * Which writes of the next interval fault (W):
 * - `interval`: every page of D written at any time in the next interval (the saver is assumed
 *   to finish only at the end of the interval: an upper bound on faults);
 * - `early`: pages of D first written within windowNs of resume (the saver is assumed to have
 *   copied the rest before the guest reaches them). Needs a first-write order; records without
 *   one fall back to `interval` and are counted in `windowFallbacks`.
 */
export type FaultWindow = { kind: "interval" } | { kind: "early"; windowNs: number };

export interface EvaluatorOptions {
  strategies: readonly Strategy[];
  costs?: Partial<CostModel>;
  window?: FaultWindow;
  /** Checkpoints to replay before counting (the history still learns from them). Default 0. */
  warmup?: number;
}

export interface StrategyResult {
  /** Strategy spec, or "cow" / "stop-copy" / "oracle" for the baselines. */
  name: string;
  kind: "strategy" | "baseline";
  checkpoints: number;
  /** Σ |P ∩ D| (only pages of D are copied; predicting others costs nothing and saves nothing). */
  predicted: number;
  /** Σ |P ∩ W|: faults avoided. */
  hits: number;
  /** Σ |W ∖ P|: COW faults taken. */
  faults: number;
  /** Σ|P ∩ W| / Σ|P ∩ D|, null when nothing was predicted. */
  precision: number | null;
  /** Σ|P ∩ W| / Σ|W|, null when nothing faulted. */
  recall: number | null;
  meanPredicted: number;
  /** Mean modelled pause: basePause + |P∩D|·copy + protect cost of D∖P. */
  meanPauseUs: number;
  /** Mean modelled stall: |W∖P|·fault. */
  meanStallUs: number;
  /** Mean modelled solo downtime = pause + stall. */
  meanDowntimeUs: number;
  /** meanDowntimeUs / cow's, null when cow's is 0. */
  downtimeVsCow: number | null;
}

export interface EvalReport {
  pageCount: number;
  /** Checkpoints counted (records after the first, minus warm-up). */
  checkpoints: number;
  window: FaultWindow;
  costs: CostModel;
  meanDirty: number;
  meanFaultable: number;
  windowFallbacks: number;
  results: StrategyResult[];
}

interface Acc {
  name: string;
  kind: "strategy" | "baseline";
  predicted: number;
  hits: number;
  faults: number;
  pauseUs: number;
  stallUs: number;
}

/**
 * Replays a dirty trace one record at a time. At each checkpoint (the end of record i-1) every
 * strategy predicts P from the history of records 0..i-1; D is record i-1's dirty set and W is the
 * part of D that record i writes within the fault window. Pure: feed records from any source.
 */
export class TraceEvaluator {
  private readonly history: PageHistory;
  private readonly costs: CostModel;
  private readonly window: FaultWindow;
  private readonly warmup: number;
  private readonly accs: Acc[];
  private seen = 0;
  private counted = 0;
  private dirtySum = 0;
  private faultableSum = 0;
  private fallbacks = 0;

  constructor(
    readonly pageCount: number,
    private readonly options: EvaluatorOptions,
  ) {
    this.costs = { ...DEFAULT_COSTS, ...options.costs };
    for (const [k, v] of Object.entries(this.costs)) {
      if (!Number.isFinite(v) || v < 0)
        throw new PredictorError("INVALID_ARGUMENT", `cost ${k} must be >= 0, got ${v}`);
    }
    this.window = options.window ?? { kind: "interval" };
    this.warmup = options.warmup ?? 0;
    const depth = Math.max(1, ...options.strategies.map((s) => s.depth));
    this.history = new PageHistory(pageCount, depth);
    const mk = (name: string, kind: Acc["kind"]): Acc => ({
      name,
      kind,
      predicted: 0,
      hits: 0,
      faults: 0,
      pauseUs: 0,
      stallUs: 0,
    });
    this.accs = [
      mk("cow", "baseline"),
      mk("stop-copy", "baseline"),
      mk("oracle", "baseline"),
      ...options.strategies.map((s) => mk(s.spec, "strategy")),
    ];
  }

  private faultable(record: DirtyTraceRecord, d: PageSet): PageSet {
    let next = record.dirty;
    if (this.window.kind === "early") {
      if (record.order.kind === "none") this.fallbacks++;
      else next = earlyPages(this.pageCount, record, { windowNs: this.window.windowNs });
    }
    return next.and(d);
  }

  private add(acc: Acc, p: PageSet, w: PageSet, dCount: number): void {
    const predicted = p.count();
    const hits = p.intersectionCount(w);
    const faults = w.count() - hits;
    acc.predicted += predicted;
    acc.hits += hits;
    acc.faults += faults;
    const c = this.costs;
    const unpredicted = dCount - predicted;
    const protectUs =
      unpredicted === 0
        ? 0
        : Math.min(unpredicted * c.protectUs, c.protectRangeUs ?? Number.POSITIVE_INFINITY);
    acc.pauseUs += c.basePauseUs + predicted * c.copyUs + protectUs;
    acc.stallUs += faults * this.costs.faultUs;
  }

  /** Feeds the next record of the trace. */
  observe(record: DirtyTraceRecord): void {
    if (record.dirty.pageCount !== this.pageCount) {
      throw new PredictorError(
        "PAGE_COUNT_MISMATCH",
        `record of epoch ${record.epoch} has ${record.dirty.pageCount} pages, expected ${this.pageCount}`,
      );
    }
    if (this.seen > this.warmup) {
      const d = this.history.dirty(0);
      const dCount = d.count();
      const w = this.faultable(record, d);
      this.counted++;
      this.dirtySum += dCount;
      this.faultableSum += w.count();
      const [cow, stop, oracle, ...rest] = this.accs;
      this.add(cow!, new PageSet(this.pageCount), w, dCount);
      this.add(stop!, d, w, dCount);
      this.add(oracle!, w, w, dCount);
      this.options.strategies.forEach((s, i) => {
        this.add(rest[i]!, s.predict(this.history).andInPlace(d), w, dCount);
      });
    }
    this.history.push(record);
    this.seen++;
  }

  report(): EvalReport {
    const n = this.counted;
    const mean = (x: number) => (n === 0 ? 0 : x / n);
    const cowDowntime = mean(this.accs[0]!.pauseUs + this.accs[0]!.stallUs);
    const results = this.accs.map((a): StrategyResult => {
      const downtime = mean(a.pauseUs + a.stallUs);
      const faultable = a.hits + a.faults;
      return {
        name: a.name,
        kind: a.kind,
        checkpoints: n,
        predicted: a.predicted,
        hits: a.hits,
        faults: a.faults,
        precision: a.predicted === 0 ? null : a.hits / a.predicted,
        recall: faultable === 0 ? null : a.hits / faultable,
        meanPredicted: mean(a.predicted),
        meanPauseUs: mean(a.pauseUs),
        meanStallUs: mean(a.stallUs),
        meanDowntimeUs: downtime,
        downtimeVsCow: cowDowntime === 0 ? null : downtime / cowDowntime,
      };
    });
    return {
      pageCount: this.pageCount,
      checkpoints: n,
      window: this.window,
      costs: this.costs,
      meanDirty: mean(this.dirtySum),
      meanFaultable: mean(this.faultableSum),
      windowFallbacks: this.fallbacks,
      results,
    };
  }
}

/** Replays a whole trace held in memory. */
export function evaluateTrace(
  pageCount: number,
  records: Iterable<DirtyTraceRecord>,
  options: EvaluatorOptions,
): EvalReport {
  const e = new TraceEvaluator(pageCount, options);
  for (const r of records) e.observe(r);
  return e.report();
}
