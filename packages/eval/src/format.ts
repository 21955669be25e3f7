/**
 * The results-directory format (FORMAT.md): types of run.json, cells, records and cell status,
 * and their validators. Pure: no I/O. Validators throw `EvaluationError` RESULTS_CORRUPT with the
 * file path and line given by the caller.
 */
import { createHash } from "node:crypto";
import { EvaluationError } from "./errors.js";

export const RESULTS_FORMAT = "vpc-eval-results/1";

export const EXPERIMENT_NAMES = [
  "solo",
  "npb",
  "sweep",
  "vc-scale",
  "interval",
  "predictor",
  "restore",
] as const;
export type ExperimentName = (typeof EXPERIMENT_NAMES)[number];

export function isExperimentName(s: string): s is ExperimentName {
  return (EXPERIMENT_NAMES as readonly string[]).includes(s);
}

/** The engine name of cells that run the kernel without checkpointing (the run-time baseline). */
export const NO_CHECKPOINT = "none";

/** The workload name of sweep cells: the guest's synthetic dirtier (images/guest/programs/vpc-dirtier.c), not NPB. */
export const DIRTIER = "dirtier";
/** The class of cells whose workload has none (sweep). */
export const NO_CLASS = "-";

/** One cell: experiment × kernel × class × engine/strategy × VM count × interval × repetition (+ RAM, chain). */
export interface Cell {
  readonly experiment: ExperimentName;
  /** NPB kernel, lower case (ep, is, cg, mg, ft); `dirtier` in sweep cells. */
  readonly kernel: string;
  /** NPB class (S, W, A, …); `-` (NO_CLASS) in sweep cells. */
  readonly cls: string;
  /** Engine spec as `createEngine` takes it (e.g. `vpc(k-of-n:k=2,n=4)`), or `none`. */
  readonly engine: string;
  readonly vms: number;
  readonly hosts: number;
  /** Checkpoint interval; 0 for `none`. */
  readonly intervalMs: number;
  /** Guest RAM per VM. */
  readonly memMiB: number;
  /**
   * Times the kernel runs back to back in one measured run (spans several checkpoints); sweep:
   * the checkpoints measured after the full base.
   */
  readonly kernelRuns: number;
  /** Dirty tracking mode asked of the agent; null = the engine's default. */
  readonly mode: "sync" | "async" | null;
  /** restore: epochs in the chain restored (1 = the full base only); null elsewhere. */
  readonly chainLength: number | null;
  /** Repetition number, from 0. */
  readonly rep: number;
  /** sweep only: page writes per second the dirtier does. */
  readonly dirtyRate?: number;
  /** sweep only: fraction of those writes that go to its small hot set (0..1). */
  readonly hotFraction?: number;
}

/** A stable, file-name-safe id: readable parts plus a hash of the whole cell. */
export function cellId(c: Cell): string {
  const slug = (s: string) => s.replace(/[^A-Za-z0-9-]+/g, "_").replace(/_+$/, "");
  const hash = createHash("sha256")
    .update(JSON.stringify(canonicalCell(c)))
    .digest("hex")
    .slice(0, 8);
  const chain = c.chainLength === null ? "" : `.c${c.chainLength}`;
  const dirtier = c.dirtyRate === undefined ? "" : `.n${c.dirtyRate}.h${slug(String(c.hotFraction))}`;
  // A class of "-" (sweep: no NPB class) is left out.
  const workload = c.cls === NO_CLASS ? c.kernel : `${c.kernel}-${c.cls}`;
  return `${c.experiment}.${workload}.${slug(c.engine)}.v${c.vms}.i${c.intervalMs}.m${c.memMiB}${chain}${dirtier}.r${c.rep}-${hash}`;
}

/** The cell's fields in a fixed order; the sweep's fields only where present, so other cells' ids stay as they were. */
function canonicalCell(c: Cell): Cell {
  return {
    experiment: c.experiment,
    kernel: c.kernel,
    cls: c.cls,
    engine: c.engine,
    vms: c.vms,
    hosts: c.hosts,
    intervalMs: c.intervalMs,
    memMiB: c.memMiB,
    kernelRuns: c.kernelRuns,
    mode: c.mode,
    chainLength: c.chainLength,
    rep: c.rep,
    ...sweepFields(c),
  };
}

function sweepFields(c: Pick<Cell, "dirtyRate" | "hotFraction">): Pick<Cell, "dirtyRate" | "hotFraction"> {
  return {
    ...(c.dirtyRate === undefined ? {} : { dirtyRate: c.dirtyRate }),
    ...(c.hotFraction === undefined ? {} : { hotFraction: c.hotFraction }),
  };
}

/** One checkpoint of one VM (the controller's CheckpointMetrics, flattened; ARCHITECTURE §2 names). */
export interface CheckpointRecord {
  readonly type: "checkpoint";
  readonly vmId: string;
  readonly epoch: number;
  readonly engine: string;
  readonly full: boolean;
  readonly pauseMs: number;
  readonly stallMs: number | null;
  readonly soloDowntimeMs: number;
  readonly memoryOverhead: number;
  readonly checkpointBytes: number;
  readonly durableMs: number | null;
  readonly pagesDirty: number | null;
  readonly pagesCopiedInPause: number | null;
  readonly pagesProtected: number | null;
  readonly pagesCowCopied: number | null;
  readonly cowFaults: number | null;
  /** Prediction of the previous checkpoint scored at this one (vpc/cow), else null. */
  readonly precision: number | null;
  readonly recall: number | null;
  readonly predicted: number | null;
  readonly hits: number | null;
  readonly written: number | null;
  readonly predictionApproximate: boolean | null;
  /**
   * Step times of the pause (ms) by name, as the engine recorded them (names and nesting are the
   * controller's: docs/engines.md); null in files written before steps were kept.
   */
  readonly steps: Readonly<Record<string, number>> | null;
  /** The controller's whole CheckpointMetrics record except `steps`; null in older files. */
  readonly metrics: Readonly<Record<string, unknown>> | null;
}

/** A checkpoint that failed (recorded, never dropped). */
export interface CheckpointFailureRecord {
  readonly type: "checkpoint-failure";
  readonly vmId: string;
  readonly epoch: number;
  readonly engine: string;
  readonly stage: string;
  readonly error: ErrorInfo;
}

/** One measured NPB run (the whole cell's workload). */
export interface RunRecord {
  readonly type: "run";
  /** Wall time of the workload (kernelRuns back to back), timed on the host. */
  readonly wallMs: number;
  readonly kernelRuns: number;
  /** Runs that printed `Verification = SUCCESSFUL`. */
  readonly verifiedRuns: number;
  readonly checkpoints: number;
  readonly failedCheckpoints: number;
  /** vc-scale: runs whose result was printed but whose mpiexec hung in MPI_Finalize and was killed. */
  readonly finalizeHangs?: number;
}

/** One global checkpoint of a virtual cluster. */
export interface VcCheckpointRecord {
  readonly type: "vc-checkpoint";
  readonly epoch: number;
  readonly vms: number;
  readonly hosts: number;
  /** first VM paused → last VM resumed */
  readonly vcDowntimeMs: number;
  readonly heldFrames: number;
  readonly loggedFrames: number;
  readonly committed: boolean;
  /** Some VM's part was a full checkpoint (the first epoch); null in files written before this field. */
  readonly full: boolean | null;
  /** Per VM: its pause began this long after the first VM's (ms); null in older files. */
  readonly pauseOffsetMs: Readonly<Record<string, number>> | null;
  /** Per VM: its solo downtime (ms); null in older files. */
  readonly soloDowntimeMs: Readonly<Record<string, number>> | null;
  /** Per VM: its pause by step (ms), the engine's steps plus the cut's around QMP stop; null in older files. */
  readonly steps: Readonly<Record<string, Readonly<Record<string, number>>>> | null;
}

/** One restore from a committed epoch. */
export interface RestoreRecord {
  readonly type: "restore";
  readonly epoch: number;
  readonly chainLength: number;
  readonly memMiB: number;
  readonly vms: number;
  /** restore started → every VM running and reachable */
  readonly restoreMs: number;
  readonly ramMs: number | null;
  readonly vmMs: number | null;
  /** The workload continued after the restore and verified; null if not checked. */
  readonly verified: boolean | null;
  /** NPB runs that completed on the restored VM (with `verified`); absent when not checked. */
  readonly verifiedRuns?: number;
  /** VC restore only: hosts of the cluster. */
  readonly hosts?: number;
  /** VC restore only: each VM's restart on its host (store → QEMU running → SSH) and channel-log frames replayed. */
  readonly perVm?: readonly RestoredVm[];
}

export interface RestoredVm {
  readonly vmId: string;
  readonly ms: number;
  readonly replayed: number;
}

/**
 * sweep: what the guest felt over one window, from vpc-dirtier's stall probe (two marks) and
 * QEMU's STOP/RESUME events. A cell has a `baseline` window (no checkpoints) and a
 * `checkpointing` window (`checkpoints` incremental checkpoints at the interval).
 */
export interface GuestStallRecord {
  readonly type: "guest-stall";
  readonly phase: "baseline" | "checkpointing";
  /** Checkpoints committed inside the window (0 for the baseline). */
  readonly checkpoints: number;
  /** The window on the guest's monotonic clock (QEMU stops it during a pause). */
  readonly guestWindowMs: number;
  /** The window on the host's clock. */
  readonly hostWindowMs: number;
  readonly pagesWritten: number;
  /** Gaps of at least 1 ms in the dirtier's loop (late wake-ups and stalled writes). */
  readonly gaps: number;
  readonly gapMs: number;
  /** The part of gaps/gapMs seen across a page write (a stalled memory access). */
  readonly writeGaps: number;
  readonly writeGapMs: number;
  readonly maxGapMs: number;
  /** Gaps by lower bound in ms ("1": 1 up to 2 ms, …). */
  readonly gapHistogram: Readonly<Record<string, number>>;
  /** QMP STOP→RESUME pairs in the window and their total length, on QEMU's own event timestamps. */
  readonly stops: number;
  readonly stoppedMs: number;
}

export type ResultRecord =
  | CheckpointRecord
  | CheckpointFailureRecord
  | RunRecord
  | VcCheckpointRecord
  | RestoreRecord
  | GuestStallRecord;

export interface ErrorInfo {
  readonly name: string;
  readonly code: string | null;
  readonly message: string;
}

export function errorInfo(e: unknown): ErrorInfo {
  const err = e instanceof Error ? e : new Error(String(e));
  const code = (err as { code?: unknown }).code;
  return { name: err.name, code: typeof code === "string" ? code : null, message: err.message };
}

/** The status file of a finished or failed cell (absent: not run, or interrupted). */
export interface CellStatus {
  readonly format: typeof RESULTS_FORMAT;
  readonly id: string;
  readonly cell: Cell;
  readonly state: "done" | "failed";
  readonly startedAt: string;
  readonly endedAt: string;
  readonly records: number;
  readonly attempt: number;
  readonly error: ErrorInfo | null;
}

export interface MachineFacts {
  readonly cpuModel: string;
  readonly cores: number;
  readonly kernel: string;
  readonly qemuVersion: string | null;
  readonly accelerator: string | null;
  readonly hostname: string;
  readonly node: string;
}

export interface ExperimentConfig {
  readonly experiment: ExperimentName;
  readonly kernels: readonly string[];
  readonly classes: readonly string[];
  readonly engines: readonly string[];
  readonly vms: readonly number[];
  readonly hosts: readonly number[];
  readonly intervalsMs: readonly number[];
  readonly memMiB: readonly number[];
  /** restore only: epochs in the restored chain. */
  readonly chainLengths: readonly number[] | null;
  /** sweep only: the dirtier's page writes per second, and the fractions of them going to its hot set. */
  readonly dirtyRates?: readonly number[];
  readonly hotFractions?: readonly number[];
  /** Guest RAM for the kernels named here, instead of `memMiB` (npb: guests sized to the kernel). */
  readonly kernelMemMiB?: Readonly<Record<string, number>>;
  readonly kernelRuns: number;
  readonly mode: "sync" | "async" | null;
  readonly repetitions: number;
}

export type PresetName = "quick" | "full";

/** run.json: the facts of a run. */
export interface RunInfo {
  readonly format: typeof RESULTS_FORMAT;
  readonly preset: PresetName | "custom";
  readonly experiments: readonly ExperimentConfig[];
  readonly machine: MachineFacts;
  readonly gitCommit: string | null;
  readonly gitDirty: boolean | null;
  readonly startedAt: string;
  /** null while running or when interrupted. */
  readonly endedAt: string | null;
  /** Each `vpc eval` invocation that wrote here (the first one and every resume). */
  readonly sessions: readonly {
    readonly startedAt: string;
    readonly endedAt: string | null;
    readonly argv: readonly string[];
  }[];
}

// ---- validation -------------------------------------------------------------------------------

type Json = Record<string, unknown>;

class Check {
  constructor(
    readonly path: string,
    readonly line: number | undefined,
  ) {}

  fail(message: string): never {
    const where = this.line === undefined ? this.path : `${this.path}:${this.line}`;
    throw new EvaluationError("RESULTS_CORRUPT", `${where}: ${message}`, {
      path: this.path,
      ...(this.line === undefined ? {} : { line: this.line }),
    });
  }

  obj(v: unknown, what: string): Json {
    if (typeof v !== "object" || v === null || Array.isArray(v)) this.fail(`${what} is not an object`);
    return v as Json;
  }

  num(o: Json, k: string): number {
    const v = o[k];
    if (typeof v !== "number" || !Number.isFinite(v))
      this.fail(`field "${k}" must be a finite number, got ${JSON.stringify(v)}`);
    return v;
  }

  numOrNull(o: Json, k: string): number | null {
    return o[k] === null || o[k] === undefined ? null : this.num(o, k);
  }

  str(o: Json, k: string): string {
    const v = o[k];
    if (typeof v !== "string") this.fail(`field "${k}" must be a string, got ${JSON.stringify(v)}`);
    return v;
  }

  strOrNull(o: Json, k: string): string | null {
    return o[k] === null || o[k] === undefined ? null : this.str(o, k);
  }

  bool(o: Json, k: string): boolean {
    const v = o[k];
    if (typeof v !== "boolean") this.fail(`field "${k}" must be true or false, got ${JSON.stringify(v)}`);
    return v;
  }

  boolOrNull(o: Json, k: string): boolean | null {
    return o[k] === null || o[k] === undefined ? null : this.bool(o, k);
  }

  /** An object of finite numbers (e.g. step name → ms), keys in file order. */
  numRecord(o: Json, k: string): Record<string, number> {
    const v = this.obj(o[k], `field "${k}"`);
    for (const key of Object.keys(v)) this.num(v, key);
    return v as Record<string, number>;
  }

  arr(o: Json, k: string): unknown[] {
    const v = o[k];
    if (!Array.isArray(v)) this.fail(`field "${k}" must be an array`);
    return v;
  }
}

/** A field older files do not have (or have as null). */
const absent = (v: unknown): boolean => v === null || v === undefined;

function parseJson(text: string, check: Check): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    return check.fail(`not valid JSON (${e instanceof Error ? e.message : String(e)})`);
  }
}

function errorInfoOf(v: unknown, c: Check): ErrorInfo {
  const o = c.obj(v, "error");
  return { name: c.str(o, "name"), code: c.strOrNull(o, "code"), message: c.str(o, "message") };
}

/** Parses one line of a cell's records file. */
export function parseRecordLine(text: string, path: string, line: number): ResultRecord {
  const c = new Check(path, line);
  const o = c.obj(parseJson(text, c), "record");
  const type = o.type;
  switch (type) {
    case "checkpoint":
      return {
        type,
        vmId: c.str(o, "vmId"),
        epoch: c.num(o, "epoch"),
        engine: c.str(o, "engine"),
        full: c.bool(o, "full"),
        pauseMs: c.num(o, "pauseMs"),
        stallMs: c.numOrNull(o, "stallMs"),
        soloDowntimeMs: c.num(o, "soloDowntimeMs"),
        memoryOverhead: c.num(o, "memoryOverhead"),
        checkpointBytes: c.num(o, "checkpointBytes"),
        durableMs: c.numOrNull(o, "durableMs"),
        pagesDirty: c.numOrNull(o, "pagesDirty"),
        pagesCopiedInPause: c.numOrNull(o, "pagesCopiedInPause"),
        pagesProtected: c.numOrNull(o, "pagesProtected"),
        pagesCowCopied: c.numOrNull(o, "pagesCowCopied"),
        cowFaults: c.numOrNull(o, "cowFaults"),
        precision: c.numOrNull(o, "precision"),
        recall: c.numOrNull(o, "recall"),
        predicted: c.numOrNull(o, "predicted"),
        hits: c.numOrNull(o, "hits"),
        written: c.numOrNull(o, "written"),
        predictionApproximate: c.boolOrNull(o, "predictionApproximate"),
        steps: absent(o.steps) ? null : c.numRecord(o, "steps"),
        metrics: absent(o.metrics) ? null : c.obj(o.metrics, "metrics"),
      };
    case "checkpoint-failure":
      return {
        type,
        vmId: c.str(o, "vmId"),
        epoch: c.num(o, "epoch"),
        engine: c.str(o, "engine"),
        stage: c.str(o, "stage"),
        error: errorInfoOf(o.error, c),
      };
    case "run":
      return {
        type,
        wallMs: c.num(o, "wallMs"),
        kernelRuns: c.num(o, "kernelRuns"),
        verifiedRuns: c.num(o, "verifiedRuns"),
        checkpoints: c.num(o, "checkpoints"),
        failedCheckpoints: c.num(o, "failedCheckpoints"),
        ...(o.finalizeHangs === undefined ? {} : { finalizeHangs: c.num(o, "finalizeHangs") }),
      };
    case "vc-checkpoint":
      return {
        type,
        epoch: c.num(o, "epoch"),
        vms: c.num(o, "vms"),
        hosts: c.num(o, "hosts"),
        vcDowntimeMs: c.num(o, "vcDowntimeMs"),
        heldFrames: c.num(o, "heldFrames"),
        loggedFrames: c.num(o, "loggedFrames"),
        committed: c.bool(o, "committed"),
        full: c.boolOrNull(o, "full"),
        pauseOffsetMs: absent(o.pauseOffsetMs) ? null : c.numRecord(o, "pauseOffsetMs"),
        soloDowntimeMs: absent(o.soloDowntimeMs) ? null : c.numRecord(o, "soloDowntimeMs"),
        steps: absent(o.steps)
          ? null
          : Object.fromEntries(
              Object.keys(c.obj(o.steps, 'field "steps"')).map((vm) => [
                vm,
                c.numRecord(o.steps as Json, vm),
              ]),
            ),
      };
    case "restore":
      return {
        type,
        epoch: c.num(o, "epoch"),
        chainLength: c.num(o, "chainLength"),
        memMiB: c.num(o, "memMiB"),
        vms: c.num(o, "vms"),
        restoreMs: c.num(o, "restoreMs"),
        ramMs: c.numOrNull(o, "ramMs"),
        vmMs: c.numOrNull(o, "vmMs"),
        verified: c.boolOrNull(o, "verified"),
        ...(o.verifiedRuns === undefined ? {} : { verifiedRuns: c.num(o, "verifiedRuns") }),
        ...(o.hosts === undefined ? {} : { hosts: c.num(o, "hosts") }),
        ...(o.perVm === undefined
          ? {}
          : {
              perVm: c.arr(o, "perVm").map((v, i) => {
                const e = c.obj(v, `perVm[${i}]`);
                return { vmId: c.str(e, "vmId"), ms: c.num(e, "ms"), replayed: c.num(e, "replayed") };
              }),
            }),
      };
    case "guest-stall": {
      const phase =
        o.phase === "baseline" || o.phase === "checkpointing"
          ? o.phase
          : c.fail(`field "phase" must be "baseline" or "checkpointing", got ${JSON.stringify(o.phase)}`);
      return {
        type,
        phase,
        checkpoints: c.num(o, "checkpoints"),
        guestWindowMs: c.num(o, "guestWindowMs"),
        hostWindowMs: c.num(o, "hostWindowMs"),
        pagesWritten: c.num(o, "pagesWritten"),
        gaps: c.num(o, "gaps"),
        gapMs: c.num(o, "gapMs"),
        writeGaps: c.num(o, "writeGaps"),
        writeGapMs: c.num(o, "writeGapMs"),
        maxGapMs: c.num(o, "maxGapMs"),
        gapHistogram: c.numRecord(o, "gapHistogram"),
        stops: c.num(o, "stops"),
        stoppedMs: c.num(o, "stoppedMs"),
      };
    }
    default:
      return c.fail(`unknown record type ${JSON.stringify(type)}`);
  }
}

/** Checks a record an executor hands in (same rules as reading it back). */
export function validateRecord(r: ResultRecord, where: string): ResultRecord {
  return parseRecordLine(JSON.stringify(r), where, 0);
}

function parseMode(v: unknown, c: Check): "sync" | "async" | null {
  if (v === null || v === undefined) return null;
  if (v === "sync" || v === "async") return v;
  return c.fail(`field "mode" must be "sync", "async" or null, got ${JSON.stringify(v)}`);
}

function parseCell(v: unknown, c: Check): Cell {
  const o = c.obj(v, "cell");
  const experiment = c.str(o, "experiment");
  if (!isExperimentName(experiment)) c.fail(`unknown experiment ${JSON.stringify(experiment)}`);
  return {
    experiment,
    kernel: c.str(o, "kernel"),
    cls: c.str(o, "cls"),
    engine: c.str(o, "engine"),
    vms: c.num(o, "vms"),
    hosts: c.num(o, "hosts"),
    intervalMs: c.num(o, "intervalMs"),
    memMiB: c.num(o, "memMiB"),
    kernelRuns: c.num(o, "kernelRuns"),
    mode: parseMode(o.mode, c),
    chainLength: c.numOrNull(o, "chainLength"),
    rep: c.num(o, "rep"),
    ...sweepFields({
      ...(o.dirtyRate === undefined ? {} : { dirtyRate: c.num(o, "dirtyRate") }),
      ...(o.hotFraction === undefined ? {} : { hotFraction: c.num(o, "hotFraction") }),
    }),
  };
}

export function parseCellStatus(text: string, path: string): CellStatus {
  const c = new Check(path, undefined);
  const o = c.obj(parseJson(text, c), "status");
  if (o.format !== RESULTS_FORMAT)
    c.fail(`format must be "${RESULTS_FORMAT}", got ${JSON.stringify(o.format)}`);
  const state =
    o.state === "done" || o.state === "failed"
      ? o.state
      : c.fail(`state must be "done" or "failed", got ${JSON.stringify(o.state)}`);
  const cell = parseCell(o.cell, c);
  const id = c.str(o, "id");
  if (id !== cellId(cell)) c.fail(`id ${id} does not match its cell (expected ${cellId(cell)})`);
  return {
    format: RESULTS_FORMAT,
    id,
    cell,
    state,
    startedAt: c.str(o, "startedAt"),
    endedAt: c.str(o, "endedAt"),
    records: c.num(o, "records"),
    attempt: c.num(o, "attempt"),
    error: absent(o.error) ? null : errorInfoOf(o.error, c),
  };
}

function numList(o: Json, k: string, c: Check): number[] {
  return c
    .arr(o, k)
    .map((x) => (typeof x === "number" && Number.isFinite(x) ? x : c.fail(`"${k}" must hold numbers`)));
}

function strList(o: Json, k: string, c: Check): string[] {
  return c.arr(o, k).map((x) => (typeof x === "string" ? x : c.fail(`"${k}" must hold strings`)));
}

export function parseExperimentConfig(v: unknown, c: Check): ExperimentConfig {
  const o = c.obj(v, "experiment config");
  const experiment = c.str(o, "experiment");
  if (!isExperimentName(experiment)) c.fail(`unknown experiment ${JSON.stringify(experiment)}`);
  return {
    experiment,
    kernels: strList(o, "kernels", c),
    classes: strList(o, "classes", c),
    engines: strList(o, "engines", c),
    vms: numList(o, "vms", c),
    hosts: numList(o, "hosts", c),
    intervalsMs: numList(o, "intervalsMs", c),
    memMiB: numList(o, "memMiB", c),
    chainLengths: absent(o.chainLengths) ? null : numList(o, "chainLengths", c),
    ...(o.dirtyRates === undefined ? {} : { dirtyRates: numList(o, "dirtyRates", c) }),
    ...(o.hotFractions === undefined ? {} : { hotFractions: numList(o, "hotFractions", c) }),
    ...(o.kernelMemMiB === undefined ? {} : { kernelMemMiB: c.numRecord(o, "kernelMemMiB") }),
    kernelRuns: c.num(o, "kernelRuns"),
    mode: parseMode(o.mode, c),
    repetitions: c.num(o, "repetitions"),
  };
}

export function parseRunInfo(text: string, path: string): RunInfo {
  const c = new Check(path, undefined);
  const o = c.obj(parseJson(text, c), "run.json");
  if (o.format !== RESULTS_FORMAT)
    c.fail(`format must be "${RESULTS_FORMAT}", got ${JSON.stringify(o.format)}`);
  const preset =
    o.preset === "quick" || o.preset === "full" || o.preset === "custom"
      ? o.preset
      : c.fail(`unknown preset ${JSON.stringify(o.preset)}`);
  const m = c.obj(o.machine, "machine");
  return {
    format: RESULTS_FORMAT,
    preset,
    experiments: c.arr(o, "experiments").map((x) => parseExperimentConfig(x, c)),
    machine: {
      cpuModel: c.str(m, "cpuModel"),
      cores: c.num(m, "cores"),
      kernel: c.str(m, "kernel"),
      qemuVersion: c.strOrNull(m, "qemuVersion"),
      accelerator: c.strOrNull(m, "accelerator"),
      hostname: c.str(m, "hostname"),
      node: c.str(m, "node"),
    },
    gitCommit: c.strOrNull(o, "gitCommit"),
    gitDirty: c.boolOrNull(o, "gitDirty"),
    startedAt: c.str(o, "startedAt"),
    endedAt: c.strOrNull(o, "endedAt"),
    sessions: c.arr(o, "sessions").map((s) => {
      const so = c.obj(s, "session");
      return {
        startedAt: c.str(so, "startedAt"),
        endedAt: c.strOrNull(so, "endedAt"),
        argv: strList(so, "argv", c),
      };
    }),
  };
}
