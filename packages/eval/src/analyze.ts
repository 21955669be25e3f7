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
  type GuestStallRecord,
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
  /** Median |D(e)| over the figure checkpoints (QEMU's engines: all of RAM). */
  readonly pagesDirtyMedian: number | null;
  /** Median ms of every pause step the checkpoints recorded, in the order the steps first appear. */
  readonly stepsMedianMs: Readonly<Record<string, number>>;
  /** sweep: the guest-side view, per checkpoint of the checkpointing windows (null elsewhere). */
  readonly guest: GuestFelt | null;
}

/**
 * What the guest felt per checkpoint (sweep), measured the same way for every engine: the time
 * QEMU had the VM stopped (its STOP→RESUME events) plus the time vpc-dirtier's writes stalled
 * beyond the baseline window's rate (the noise floor: host scheduling, the guest's timer).
 */
export interface GuestFelt {
  readonly checkpoints: number;
  /** QEMU STOP→RESUME per checkpoint. */
  readonly stoppedMs: number;
  /** Write gaps per checkpoint, raw. */
  readonly writeGapMs: number;
  /** The baseline's write-gap rate over the same guest time, per checkpoint (subtracted). */
  readonly baselineWriteGapMs: number;
  /** writeGapMs − baselineWriteGapMs: the stall the checkpoints added (can be < 0 within noise). */
  readonly stallMs: number;
  /** stoppedMs + stallMs: guest-felt downtime per checkpoint. */
  readonly downtimeMs: number;
  /** All gaps (late wake-ups too) per checkpoint, raw, and the baseline's over the same time. */
  readonly gapMs: number;
  readonly baselineGapMs: number;
  /** Largest gap in a checkpointing window. */
  readonly maxGapMs: number;
  /** Page writes per second achieved in the checkpointing windows and in the baselines. */
  readonly rate: number;
  readonly baselineRate: number;
}

/** The pause of one engine broken down by step, over the run's figure checkpoints. */
export interface EngineSteps {
  readonly engine: string;
  readonly checkpoints: number;
  readonly pauseMedianMs: number | null;
  /** Step name → median ms, in the order the steps first appear. */
  readonly stepsMedianMs: Readonly<Record<string, number>>;
}

/** The VMs' pauses in the global checkpoints of one engine (vc-scale): by step, and how far apart they began. */
export interface VcPauseSteps {
  readonly engine: string;
  /** Committed incremental global checkpoints that recorded steps. */
  readonly epochs: number;
  /** VM pauses in them. */
  readonly vmPauses: number;
  /** Median over epochs of the last VM's pause start after the first's (ms): the hosts' spread. */
  readonly spreadMedianMs: number | null;
  /** Step name → median ms over every VM pause, in the order the steps first appear. */
  readonly stepsMedianMs: Readonly<Record<string, number>>;
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
  readonly steps: readonly EngineSteps[];
  readonly vcSteps: readonly VcPauseSteps[];
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

/**
 * qemu-snapshot's `pauseMs` is QEMU's own reported downtime: the vCPU stalls in its write-protect
 * faults after resume are not in it, so next to other engines' solo VM downtime it is a pause only.
 */
export const pauseOnly = (engine: string) => engine.startsWith("qemu-snapshot");

/** Median of each step over `pauses` (one steps record per pause), keys in first-seen order. */
function stepMedians(pauses: readonly Readonly<Record<string, number>>[]): Record<string, number> {
  const byStep = new Map<string, number[]>();
  for (const steps of pauses)
    for (const [step, ms] of Object.entries(steps)) {
      const values = byStep.get(step) ?? [];
      values.push(ms);
      byStep.set(step, values);
    }
  const out: Record<string, number> = {};
  for (const [step, values] of byStep) {
    const m = median(values);
    if (m !== null) out[step] = m;
  }
  return out;
}

/** Pools the sweep windows of `cells` (each cell: one baseline, one checkpointing window). */
function guestFelt(cells: readonly CellResult[]): GuestFelt | null {
  let checkpoints = 0;
  let stoppedMs = 0;
  let writeGapMs = 0;
  let baselineWriteGapMs = 0;
  let gapMs = 0;
  let baselineGapMs = 0;
  let maxGapMs = 0;
  let pages = 0;
  let windowMs = 0;
  let baselinePages = 0;
  let baselineWindowMs = 0;
  for (const c of cells) {
    const windows = c.records.filter((r): r is GuestStallRecord => r.type === "guest-stall");
    const base = windows.find((r) => r.phase === "baseline");
    const cp = windows.find((r) => r.phase === "checkpointing");
    if (!base || !cp || base.guestWindowMs <= 0 || cp.checkpoints === 0) continue;
    // The baseline's rate of gaps, over the guest time of the checkpointing window.
    const scale = cp.guestWindowMs / base.guestWindowMs;
    checkpoints += cp.checkpoints;
    stoppedMs += cp.stoppedMs;
    writeGapMs += cp.writeGapMs;
    baselineWriteGapMs += base.writeGapMs * scale;
    gapMs += cp.gapMs;
    baselineGapMs += base.gapMs * scale;
    maxGapMs = Math.max(maxGapMs, cp.maxGapMs);
    pages += cp.pagesWritten;
    windowMs += cp.guestWindowMs;
    baselinePages += base.pagesWritten;
    baselineWindowMs += base.guestWindowMs;
  }
  if (checkpoints === 0) return null;
  const per = (x: number) => x / checkpoints;
  const stallMs = per(writeGapMs - baselineWriteGapMs);
  return {
    checkpoints,
    stoppedMs: per(stoppedMs),
    writeGapMs: per(writeGapMs),
    baselineWriteGapMs: per(baselineWriteGapMs),
    stallMs,
    downtimeMs: per(stoppedMs) + stallMs,
    gapMs: per(gapMs),
    baselineGapMs: per(baselineGapMs),
    maxGapMs,
    rate: (pages / windowMs) * 1000,
    baselineRate: baselineWindowMs > 0 ? (baselinePages / baselineWindowMs) * 1000 : 0,
  };
}

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
    pagesDirtyMedian: median(cps.map((r) => r.pagesDirty)),
    stepsMedianMs: stepMedians(cps.flatMap((r) => (r.steps === null ? [] : [r.steps]))),
    guest: guestFelt(done),
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
    (a.dirtyRate ?? 0) - (b.dirtyRate ?? 0) ||
    (a.hotFraction ?? 0) - (b.hotFraction ?? 0) ||
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

/** Ratios of `num` rows to `den` rows among the rows `include` takes, matched on everything but the engine. */
function ratios(
  rows: readonly GroupRow[],
  include: (r: GroupRow) => boolean,
  num: (r: GroupRow) => number | null,
  numEngine: string,
  den: (r: GroupRow) => number | null,
  denEngine: string,
  label: (r: GroupRow) => string,
): Ratio[] {
  const out: Ratio[] = [];
  for (const a of rows.filter((r) => include(r) && r.engine === numEngine)) {
    const b = rows.find(
      (r) =>
        include(r) &&
        r.experiment === a.experiment &&
        r.engine === denEngine &&
        r.kernel === a.kernel &&
        r.cls === a.cls &&
        r.vms === a.vms &&
        r.hosts === a.hosts &&
        r.intervalMs === a.intervalMs &&
        r.memMiB === a.memMiB &&
        r.dirtyRate === a.dirtyRate &&
        r.hotFraction === a.hotFraction,
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
/** A sweep point: page writes per second and hot fraction. */
const sweepLabel = (r: Pick<GroupRow, "dirtyRate" | "hotFraction">) =>
  `${r.dirtyRate ?? "?"} pages/s, h ${r.hotFraction ?? "?"}`;
const vmsLabel = (r: GroupRow) =>
  `${r.kernel.toUpperCase()}.${r.cls} ${r.vms} VM${r.vms > 1 ? "s" : ""}/${r.hosts} host${r.hosts > 1 ? "s" : ""}`;
const percent = (x: number) => `${(x * 100).toFixed(1)}%`;

/** One VM running NPB under an engine: `solo`, and the one-VM cells of `npb`. */
const soloNpb = (r: GroupRow) => r.experiment === "solo" || (r.experiment === "npb" && r.vms === 1);
/** A virtual cluster running NPB: `vc-scale`, and the several-VM cells of `npb`. */
const clusterNpb = (r: GroupRow) => r.experiment === "vc-scale" || (r.experiment === "npb" && r.vms > 1);

/** The paper's claims and our targets (issue 11), each against the worst measured case. */
export function claimRows(rows: readonly GroupRow[]): ClaimRow[] {
  const solo = (r: GroupRow) => r.soloDowntimeMedianMs;
  const vsStopCopy = ratios(rows, soloNpb, solo, VPC_DEFAULT, solo, "stop-copy", kernelLabel);
  const vsCow = ratios(rows, soloNpb, solo, VPC_DEFAULT, solo, "cow", kernelLabel);
  const vsQemu = ratios(
    rows,
    soloNpb,
    solo,
    VPC_DEFAULT,
    (r) => r.pauseMedianMs,
    "qemu-snapshot",
    kernelLabel,
  );
  const felt = (r: GroupRow) => r.guest?.downtimeMs ?? null;
  const feltVsQemu = ratios(
    rows,
    (r) => r.experiment === "sweep",
    felt,
    VPC_DEFAULT,
    felt,
    "qemu-snapshot",
    sweepLabel,
  );
  const vc = (r: GroupRow) => r.vcDowntimeMedianMs;
  const vsPrecopy = ratios(rows, clusterNpb, vc, VPC_DEFAULT, vc, "precopy", vmsLabel);
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
      `vpc ${med} ÷ qemu-snapshot median pause (pause only: QEMU's reported downtime, without the vCPU stalls in its write-protect faults after resume)`,
      "<=",
      0.25,
      vsQemu,
    ),
    claim(
      "target",
      "guest-felt downtime ≤ 0.25 × qemu-snapshot's (sweep)",
      "vpc ÷ qemu-snapshot, guest-felt downtime per checkpoint (QEMU STOP→RESUME + vpc-dirtier's write stalls over its baseline), the same probe for both",
      "<=",
      0.25,
      feltVsQemu,
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
  return {
    groups,
    failed,
    claims: claimRows(groups),
    steps: engineSteps(results),
    vcSteps: vcEngineSteps(results),
  };
}

/** Pure: the VM pauses of `records` (one engine's global checkpoints) by step and spread. */
export function vcPauseSteps(engine: string, records: readonly VcCheckpointRecord[]): VcPauseSteps {
  const withSteps = records.filter((r) => r.steps !== null && Object.keys(r.steps).length > 0);
  const pauses = withSteps.flatMap((r) => Object.values(r.steps!));
  const spreads = withSteps.flatMap((r) =>
    r.pauseOffsetMs === null ? [] : [Math.max(0, ...Object.values(r.pauseOffsetMs))],
  );
  return {
    engine,
    epochs: withSteps.length,
    vmPauses: pauses.length,
    spreadMedianMs: median(spreads),
    stepsMedianMs: stepMedians(pauses),
  };
}

/** Per engine of the run's vc-scale cells, the VM pauses of its committed incremental global checkpoints. */
export function vcEngineSteps(results: Results): VcPauseSteps[] {
  const byEngine = new Map<string, VcCheckpointRecord[]>();
  for (const c of results.cells) {
    if (c.status.state !== "done") continue;
    const engine = c.status.cell.engine;
    const vc = ofType<VcCheckpointRecord>([c], "vc-checkpoint").filter(
      (r) => r.committed && (r.full !== true || alwaysFull(engine)),
    );
    if (vc.length === 0) continue;
    byEngine.set(engine, [...(byEngine.get(engine) ?? []), ...vc]);
  }
  return [...byEngine]
    .map(([engine, records]) => vcPauseSteps(engine, records))
    .filter((e) => e.vmPauses > 0);
}

/** Per engine (in the order engines first appear), the pause steps over all its figure checkpoints in the run. */
export function engineSteps(results: Results): EngineSteps[] {
  const byEngine = new Map<string, CheckpointRecord[]>();
  for (const c of results.cells) {
    if (c.status.state !== "done") continue;
    const cps = figureCheckpoints(c).filter((r) => r.steps !== null);
    if (cps.length === 0) continue;
    const list = byEngine.get(c.status.cell.engine) ?? [];
    list.push(...cps);
    byEngine.set(c.status.cell.engine, list);
  }
  // Engines in the order the run's configs name them (cells are sorted by id, not by intent).
  const order = results.run.experiments.flatMap((e) => e.engines);
  const rank = (engine: string) => (order.includes(engine) ? order.indexOf(engine) : order.length);
  return [...byEngine]
    .sort(([a], [b]) => rank(a) - rank(b))
    .map(([engine, cps]) => ({
      engine,
      checkpoints: cps.length,
      pauseMedianMs: median(cps.map((r) => r.pauseMs)),
      stepsMedianMs: stepMedians(cps.flatMap((r) => (r.steps === null ? [] : [r.steps]))),
    }));
}
