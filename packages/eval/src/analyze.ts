/**
 * Pure analysis of read results: rows grouped over repetitions, run-time overhead against the
 * `none` baseline, and the claims/targets table. No I/O; the report and the CSV files use it.
 */
import { distribution } from "@vpc/controller";
import { VPC_DEFAULT } from "./experiments.js";
import {
  type Cell,
  type CheckpointRecord,
  EXPERIMENT_NAMES,
  type ExperimentName,
  NO_CHECKPOINT,
  type RestoreRecord,
  type RunRecord,
  type VcCheckpointRecord,
} from "./format.js";
import type { CellResult, Results } from "./results-dir.js";

/** The cell fields a row groups on (everything but the repetition and the tracking mode). */
export type GroupKey = Omit<Cell, "rep" | "mode">;

/** One engine configuration measured over its repetitions. */
export interface GroupRow extends GroupKey {
  readonly cells: number;
  readonly failedCells: number;
  /** Checkpoints used for the figures: incremental ones (all, for engines that are always full). */
  readonly checkpoints: number;
  readonly failedCheckpoints: number;
  readonly soloDowntimeMedianMs: number | null;
  readonly soloDowntimeP95Ms: number | null;
  readonly pauseMedianMs: number | null;
  readonly pauseP95Ms: number | null;
  readonly stallMedianMs: number | null;
  readonly memoryOverheadMax: number | null;
  readonly memoryOverheadMedian: number | null;
  readonly checkpointBytesMedian: number | null;
  readonly precision: number | null;
  readonly recall: number | null;
  readonly predictionApproximate: boolean | null;
  readonly wallMedianMs: number | null;
  readonly runtimeOverhead: number | null;
  readonly verifiedRuns: number;
  readonly kernelRunsTotal: number;
  readonly vcDowntimeMedianMs: number | null;
  readonly vcDowntimeP95Ms: number | null;
  readonly heldFrames: number;
  readonly loggedFrames: number;
  readonly restoreMedianMs: number | null;
  readonly restoreP95Ms: number | null;
  readonly restores: number;
  /** Restores after which NPB went on and verified; `restoresChecked` of them were checked at all. */
  readonly restoresVerified: number;
  readonly restoresChecked: number;
}

export interface FailedCell {
  readonly id: string;
  readonly cell: Cell;
  readonly error: string;
  readonly code: string | null;
}

export type ClaimStatus = "met" | "not met" | "not measured";

export interface ClaimRow {
  readonly source: "paper" | "target";
  readonly claim: string;
  /** What is divided by what (or the plain metric). */
  readonly measure: string;
  readonly comparator: "<=" | "<";
  readonly threshold: number;
  /** Worst case over the kernels / VM counts measured, or null. */
  readonly measured: number | null;
  readonly status: ClaimStatus;
  /** Per-kernel (or per-VM-count) values behind `measured`. */
  readonly detail: string;
}

export interface Analysis {
  readonly groups: readonly GroupRow[];
  readonly failed: readonly FailedCell[];
  readonly claims: readonly ClaimRow[];
}

const keyOf = ({ rep: _rep, mode: _mode, ...key }: Cell): GroupKey => key;

const pct = (q: number) => (values: (number | null)[]) => {
  const d = distribution(values);
  return q === 0.5 ? d.median : d.p95;
};
const median = pct(0.5);
const p95 = pct(0.95);

/** QEMU's own engines save all of RAM every time; their figures are over full checkpoints. */
const alwaysFull = (engine: string) => engine.startsWith("qemu-");

/** The checkpoints figures are taken over: incremental ones (a full base is a one-off), all for QEMU's engines. */
function figureCheckpoints(cell: CellResult): CheckpointRecord[] {
  const ok = cell.records.filter((r): r is CheckpointRecord => r.type === "checkpoint");
  return alwaysFull(cell.status.cell.engine) ? ok : ok.filter((r) => !r.full);
}

function ofType<T extends { type: string }>(cells: readonly CellResult[], type: T["type"]): T[] {
  return cells.flatMap((c) => c.records.filter((r) => r.type === type) as unknown as T[]);
}

function buildGroup(key: GroupKey, cells: readonly CellResult[]): Omit<GroupRow, "runtimeOverhead"> {
  const done = cells.filter((c) => c.status.state === "done");
  const cps = done.flatMap(figureCheckpoints);
  const runs = ofType<RunRecord>(done, "run");
  // Like the solo figures: over incremental epochs, the full first one is a one-off.
  const vc = ofType<VcCheckpointRecord>(done, "vc-checkpoint").filter(
    (r) => r.committed && (r.full !== true || alwaysFull(key.engine)),
  );
  const restores = ofType<RestoreRecord>(done, "restore");
  const predicted = cps.reduce((s, r) => s + (r.predicted ?? 0), 0);
  const hits = cps.reduce((s, r) => s + (r.hits ?? 0), 0);
  const written = cps.reduce((s, r) => s + (r.written ?? 0), 0);
  const withPrediction = cps.filter((r) => r.predicted !== null);
  const directPrecision = cps.map((r) => r.precision);
  const directRecall = cps.map((r) => r.recall);
  return {
    ...key,
    cells: cells.length,
    failedCells: cells.length - done.length,
    checkpoints: cps.length,
    failedCheckpoints: done.reduce(
      (s, c) => s + c.records.filter((r) => r.type === "checkpoint-failure").length,
      0,
    ),
    soloDowntimeMedianMs: median(cps.map((r) => r.soloDowntimeMs)),
    soloDowntimeP95Ms: p95(cps.map((r) => r.soloDowntimeMs)),
    pauseMedianMs: median(cps.map((r) => r.pauseMs)),
    pauseP95Ms: p95(cps.map((r) => r.pauseMs)),
    stallMedianMs: median(cps.map((r) => r.stallMs)),
    memoryOverheadMax: distribution(cps.map((r) => r.memoryOverhead)).max,
    memoryOverheadMedian: median(cps.map((r) => r.memoryOverhead)),
    checkpointBytesMedian: median(cps.map((r) => r.checkpointBytes)),
    // Pooled like the controller's summary (Σhits/Σpredicted); records without counts fall back to the median.
    precision:
      withPrediction.length > 0 ? (predicted > 0 ? hits / predicted : null) : median(directPrecision),
    recall: withPrediction.length > 0 ? (written > 0 ? hits / written : null) : median(directRecall),
    predictionApproximate: cps.some((r) => r.predictionApproximate === true)
      ? true
      : cps.some((r) => r.predictionApproximate === false)
        ? false
        : null,
    wallMedianMs: median(runs.map((r) => r.wallMs)),
    verifiedRuns: runs.reduce((s, r) => s + r.verifiedRuns, 0),
    kernelRunsTotal: runs.reduce((s, r) => s + r.kernelRuns, 0),
    vcDowntimeMedianMs: median(vc.map((r) => r.vcDowntimeMs)),
    vcDowntimeP95Ms: p95(vc.map((r) => r.vcDowntimeMs)),
    heldFrames: vc.reduce((s, r) => s + r.heldFrames, 0),
    loggedFrames: vc.reduce((s, r) => s + r.loggedFrames, 0),
    restoreMedianMs: median(restores.map((r) => r.restoreMs)),
    restoreP95Ms: p95(restores.map((r) => r.restoreMs)),
    restores: restores.length,
    restoresVerified: restores.filter((r) => r.verified === true).length,
    restoresChecked: restores.filter((r) => r.verified !== null).length,
  };
}

/** Same workload without checkpointing: same experiment first, else any experiment. */
function baselineOf(g: GroupKey, rows: readonly Omit<GroupRow, "runtimeOverhead">[]) {
  const same = (b: GroupKey) =>
    b.engine === NO_CHECKPOINT &&
    b.kernel === g.kernel &&
    b.cls === g.cls &&
    b.vms === g.vms &&
    b.hosts === g.hosts &&
    b.memMiB === g.memMiB &&
    b.kernelRuns === g.kernelRuns;
  return rows.find((b) => same(b) && b.experiment === g.experiment) ?? rows.find(same);
}

/** Report order: experiment, kernel, class, `none` first then engines by name, then the numbers. */
function compareKeys(a: GroupKey, b: GroupKey): number {
  const engineRank = (k: GroupKey) => (k.engine === NO_CHECKPOINT ? "" : k.engine);
  return (
    EXPERIMENT_NAMES.indexOf(a.experiment) - EXPERIMENT_NAMES.indexOf(b.experiment) ||
    a.kernel.localeCompare(b.kernel) ||
    a.cls.localeCompare(b.cls) ||
    engineRank(a).localeCompare(engineRank(b)) ||
    a.vms - b.vms ||
    a.hosts - b.hosts ||
    a.intervalMs - b.intervalMs ||
    a.memMiB - b.memMiB ||
    (a.chainLength ?? 0) - (b.chainLength ?? 0)
  );
}

export function groupRows(results: Results): GroupRow[] {
  const byKey = new Map<string, { key: GroupKey; cells: CellResult[] }>();
  for (const c of results.cells) {
    const key = keyOf(c.status.cell);
    const k = JSON.stringify(key);
    const entry = byKey.get(k) ?? { key, cells: [] };
    entry.cells.push(c);
    byKey.set(k, entry);
  }
  const rows = [...byKey.values()].map((e) => buildGroup(e.key, e.cells)).sort(compareKeys);
  return rows.map((r) => {
    const base = r.engine === NO_CHECKPOINT ? undefined : baselineOf(r, rows);
    const overhead =
      base?.wallMedianMs && r.wallMedianMs !== null ? r.wallMedianMs / base.wallMedianMs - 1 : null;
    return { ...r, runtimeOverhead: overhead };
  });
}

const fmtRatio = (x: number) => x.toFixed(3);

interface Ratio {
  readonly label: string;
  readonly value: number;
}

/** Ratios of `num` rows to `den` rows matched on everything but the engine. */
function ratios(
  rows: readonly GroupRow[],
  experiment: ExperimentName,
  num: (r: GroupRow) => number | null,
  numEngine: string,
  den: (r: GroupRow) => number | null,
  denEngine: string,
  label: (r: GroupRow) => string,
): Ratio[] {
  const out: Ratio[] = [];
  for (const a of rows.filter((r) => r.experiment === experiment && r.engine === numEngine)) {
    const b = rows.find(
      (r) =>
        r.experiment === experiment &&
        r.engine === denEngine &&
        r.kernel === a.kernel &&
        r.cls === a.cls &&
        r.vms === a.vms &&
        r.hosts === a.hosts &&
        r.intervalMs === a.intervalMs &&
        r.memMiB === a.memMiB,
    );
    const x = num(a);
    const y = b ? den(b) : null;
    if (x !== null && y !== null && y > 0) out.push({ label: label(a), value: x / y });
  }
  return out;
}

function claim(
  source: ClaimRow["source"],
  text: string,
  measure: string,
  comparator: ClaimRow["comparator"],
  threshold: number,
  values: readonly Ratio[],
  format: (x: number) => string = fmtRatio,
): ClaimRow {
  if (values.length === 0) {
    return {
      source,
      claim: text,
      measure,
      comparator,
      threshold,
      measured: null,
      status: "not measured",
      detail: "",
    };
  }
  const worst = Math.max(...values.map((v) => v.value));
  const ok = comparator === "<=" ? worst <= threshold : worst < threshold;
  return {
    source,
    claim: text,
    measure,
    comparator,
    threshold,
    measured: worst,
    status: ok ? "met" : "not met",
    detail: values.map((v) => `${v.label} ${format(v.value)}`).join(", "),
  };
}

const kernelLabel = (r: GroupRow) => `${r.kernel.toUpperCase()}.${r.cls}${r.vms > 1 ? ` ×${r.vms}` : ""}`;
const vmsLabel = (r: GroupRow) =>
  `${r.kernel.toUpperCase()}.${r.cls} ${r.vms} VM${r.vms > 1 ? "s" : ""}/${r.hosts} host${r.hosts > 1 ? "s" : ""}`;
const percent = (x: number) => `${(x * 100).toFixed(1)}%`;

/** The paper's claims and our targets (issue 11), each against the worst measured case. */
export function claimRows(rows: readonly GroupRow[]): ClaimRow[] {
  const solo = (r: GroupRow) => r.soloDowntimeMedianMs;
  const vsStopCopy = ratios(rows, "solo", solo, VPC_DEFAULT, solo, "stop-copy", kernelLabel);
  const vsCow = ratios(rows, "solo", solo, VPC_DEFAULT, solo, "cow", kernelLabel);
  const vsQemu = ratios(
    rows,
    "solo",
    solo,
    VPC_DEFAULT,
    (r) => r.pauseMedianMs,
    "qemu-snapshot",
    kernelLabel,
  );
  const vc = (r: GroupRow) => r.vcDowntimeMedianMs;
  const vsPrecopy = ratios(rows, "vc-scale", vc, VPC_DEFAULT, vc, "precopy", vmsLabel);
  const vpcRows = rows.filter((r) => r.engine === VPC_DEFAULT);
  const mem: Ratio[] = vpcRows
    .filter((r) => r.memoryOverheadMax !== null)
    .map((r) => ({
      label: `${r.experiment} ${kernelLabel(r)} ${r.memMiB} MiB`,
      value: r.memoryOverheadMax as number,
    }));
  const runtimeAt1s: Ratio[] = vpcRows
    .filter((r) => r.intervalMs === 1000 && r.runtimeOverhead !== null)
    .map((r) => ({ label: `${r.experiment} ${kernelLabel(r)}`, value: r.runtimeOverhead as number }));
  const med = "median solo VM downtime";
  return [
    claim(
      "paper",
      "solo VM downtime ~45% lower than incremental stop-and-copy",
      `vpc ÷ stop-copy, ${med}`,
      "<=",
      0.55,
      vsStopCopy,
    ),
    claim(
      "paper",
      "VC downtime ~50% lower than VNsnap-like live pre-copy",
      "vpc ÷ precopy, median VC downtime",
      "<=",
      0.5,
      vsPrecopy,
    ),
    claim(
      "paper",
      "memory overhead at most 9% of guest RAM",
      "vpc peak memory overhead",
      "<=",
      0.09,
      mem,
      percent,
    ),
    claim(
      "paper",
      "run-time overhead under 16%",
      "vpc run-time overhead at 1 s",
      "<",
      0.16,
      runtimeAt1s,
      percent,
    ),
    claim("target", "solo VM downtime ≤ 0.30 × stop-copy", `vpc ÷ stop-copy, ${med}`, "<=", 0.3, vsStopCopy),
    claim("target", "solo VM downtime ≤ 0.60 × cow", `vpc ÷ cow, ${med}`, "<=", 0.6, vsCow),
    claim(
      "target",
      "solo VM downtime ≤ 0.25 × qemu-snapshot's pause",
      `vpc ${med} ÷ qemu-snapshot median pause`,
      "<=",
      0.25,
      vsQemu,
    ),
    claim(
      "target",
      "VC downtime ≤ 0.40 × precopy",
      "vpc ÷ precopy, median VC downtime",
      "<=",
      0.4,
      vsPrecopy,
    ),
    claim("target", "memory overhead ≤ 5%", "vpc peak memory overhead", "<=", 0.05, mem, percent),
    claim(
      "target",
      "run-time overhead < 8% at a 1 s interval",
      "vpc run-time overhead at 1 s",
      "<",
      0.08,
      runtimeAt1s,
      percent,
    ),
  ];
}

export function analyze(results: Results): Analysis {
  const groups = groupRows(results);
  const failed = results.cells
    .filter((c) => c.status.state === "failed")
    .map((c) => ({
      id: c.id,
      cell: c.status.cell,
      error: c.status.error?.message ?? "unknown error",
      code: c.status.error?.code ?? null,
    }));
  return { groups, failed, claims: claimRows(groups) };
}
