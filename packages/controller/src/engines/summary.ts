/** Summary of a run of checkpoint records (pure). */
import type { CheckpointRecord } from "./types.js";

export interface Distribution {
  readonly n: number;
  readonly median: number | null;
  readonly p95: number | null;
  readonly max: number | null;
  readonly mean: number | null;
}

export interface CheckpointSummary {
  readonly engine: string | null;
  readonly checkpoints: number;
  readonly failed: number;
  readonly fullEpochs: number;
  /** Over incremental checkpoints only (a full epoch is a one-off and would skew every figure). */
  readonly pauseMs: Distribution;
  readonly soloDowntimeMs: Distribution;
  readonly stallMs: Distribution;
  readonly cowFaults: Distribution;
  readonly pagesDirty: Distribution;
  readonly memoryOverhead: Distribution;
  readonly durableMs: Distribution;
  readonly checkpointBytes: Distribution;
  /** Σ|P∩W| / Σ|P∩D| and Σ|P∩W| / Σ|W| over all reported predictions. */
  readonly precision: number | null;
  readonly recall: number | null;
}

/** Linear-interpolated quantile of sorted values (q in 0..1). */
export function quantile(sorted: readonly number[], q: number): number | null {
  if (sorted.length === 0) return null;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

export function distribution(values: readonly (number | null)[]): Distribution {
  const v = values.filter((x): x is number => x !== null && Number.isFinite(x)).sort((a, b) => a - b);
  return {
    n: v.length,
    median: quantile(v, 0.5),
    p95: quantile(v, 0.95),
    max: v.length ? v[v.length - 1]! : null,
    mean: v.length ? v.reduce((s, x) => s + x, 0) / v.length : null,
  };
}

export function summarizeCheckpoints(records: readonly CheckpointRecord[]): CheckpointSummary {
  const ok = records.filter((r) => r.ok);
  const inc = ok.filter((r) => !r.full);
  let predicted = 0;
  let hits = 0;
  let written = 0;
  let anyPrediction = false;
  for (const r of ok) {
    if (!r.prediction) continue;
    anyPrediction = true;
    predicted += r.prediction.predicted;
    hits += r.prediction.hits;
    written += r.prediction.written;
  }
  const pick = (f: (r: (typeof inc)[number]) => number | null) => distribution(inc.map(f));
  return {
    engine: records[0]?.engine ?? null,
    checkpoints: ok.length,
    failed: records.length - ok.length,
    fullEpochs: ok.length - inc.length,
    pauseMs: pick((r) => r.pauseMs),
    soloDowntimeMs: pick((r) => r.soloDowntimeMs),
    stallMs: pick((r) => r.stallMs),
    cowFaults: pick((r) => r.cowFaults),
    pagesDirty: pick((r) => r.pagesDirty),
    memoryOverhead: pick((r) => r.memoryOverhead),
    durableMs: pick((r) => r.durableMs),
    checkpointBytes: pick((r) => r.checkpointBytes),
    precision: anyPrediction && predicted > 0 ? hits / predicted : null,
    recall: anyPrediction && written > 0 ? hits / written : null,
  };
}
