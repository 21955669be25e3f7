/**
 * Runs the cells of one or more experiments into a results directory. Resumable: a cell with a
 * `done` status is skipped; a failed or interrupted one runs again. A cell whose executor throws
 * is recorded as `failed` with the error, and the run goes on with the next cell.
 */
import { mkdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { EvaluationError } from "./errors.js";
import { expandCells } from "./experiments.js";
import {
  type Cell,
  cellId,
  type ExperimentConfig,
  type ExperimentName,
  errorInfo,
  type MachineFacts,
  type PresetName,
  RESULTS_FORMAT,
  type ResultRecord,
  type RunInfo,
  validateRecord,
} from "./format.js";
import {
  CellWriter,
  RUN_FILE,
  readCellStatus,
  readResults,
  readRunInfo,
  writeCellStatus,
  writeRunInfo,
} from "./results-dir.js";
import { writeSummaries } from "./summary.js";

export interface CellContext {
  readonly id: string;
  /** Validates and appends one record to the cell's JSON lines. */
  record(record: ResultRecord): Promise<void>;
  /** A progress line for a long step inside the cell. */
  progress(message: string): void;
  /** Aborted when the run is interrupted; executors stop and clean up. */
  readonly signal: AbortSignal;
}

/** Runs one cell; rejects to record the cell as failed. */
export type CellExecutor = (cell: Cell, ctx: CellContext) => Promise<void>;

export interface RunOptions {
  /** New run: the experiments to run. Ignored on resume (run.json holds them). */
  readonly experiments: readonly ExperimentConfig[];
  readonly preset: PresetName | "custom";
  /** The results directory: created for a new run, read for a resume. */
  readonly dir: string;
  readonly resume: boolean;
  readonly executor: (experiment: ExperimentName) => CellExecutor;
  readonly machine: () => Promise<MachineFacts>;
  readonly git: { readonly commit: string | null; readonly dirty: boolean | null };
  /** The command line, kept in run.json so the report can print it. */
  readonly argv: readonly string[];
  readonly progress?: (line: string) => void;
  readonly now?: () => Date;
  readonly signal?: AbortSignal;
}

export interface RunSummary {
  readonly dir: string;
  readonly total: number;
  readonly skipped: number;
  readonly done: number;
  readonly failed: number;
  /** True when the signal stopped the run before every cell ran. */
  readonly interrupted: boolean;
}

/** `results/<UTC timestamp>` with characters safe in file names. */
export function timestampDirName(d: Date): string {
  return d
    .toISOString()
    .replace(/\.\d+Z$/, "Z")
    .replace(/:/g, "-");
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

export async function runExperiments(o: RunOptions): Promise<RunSummary> {
  const now = o.now ?? (() => new Date());
  const progress = o.progress ?? (() => undefined);
  const signal = o.signal ?? new AbortController().signal;
  const startedAt = now().toISOString();
  let info: RunInfo;
  if (o.resume) {
    info = await readRunInfo(o.dir);
    info = {
      ...info,
      endedAt: null,
      sessions: [...info.sessions, { startedAt, endedAt: null, argv: [...o.argv] }],
    };
  } else {
    if (await exists(join(o.dir, RUN_FILE))) {
      throw new EvaluationError(
        "CONFIG",
        `${o.dir} already holds results; resume it with --resume ${o.dir} or pick another --out`,
      );
    }
    if (o.experiments.length === 0) throw new EvaluationError("CONFIG", "no experiment to run");
    await mkdir(o.dir, { recursive: true });
    info = {
      format: RESULTS_FORMAT,
      preset: o.preset,
      experiments: [...o.experiments],
      machine: await o.machine(),
      gitCommit: o.git.commit,
      gitDirty: o.git.dirty,
      startedAt,
      endedAt: null,
      sessions: [{ startedAt, endedAt: null, argv: [...o.argv] }],
    };
  }
  await writeRunInfo(o.dir, info);

  const cells = info.experiments.flatMap((c) => expandCells(c));
  let skipped = 0;
  let done = 0;
  let failed = 0;
  let interrupted = false;
  progress(`results: ${o.dir} (${cells.length} cells)`);
  for (const [i, cell] of cells.entries()) {
    const id = cellId(cell);
    const tag = `[${i + 1}/${cells.length}] ${id}`;
    if (signal.aborted) {
      interrupted = true;
      break;
    }
    const previous = await readCellStatus(o.dir, id);
    if (previous?.state === "done") {
      skipped++;
      progress(`${tag} skipped (done)`);
      continue;
    }
    progress(`${tag} running`);
    const cellStarted = now();
    const writer = await CellWriter.begin(o.dir, cell);
    const ctx: CellContext = {
      id,
      record: (r) => writer.append(validateRecord(r, `record of cell ${id}`)),
      progress: (m) => progress(`${tag} ${m}`),
      signal,
    };
    let error: unknown;
    let ok = true;
    try {
      await o.executor(cell.experiment)(cell, ctx);
    } catch (e) {
      ok = false;
      error = e;
    }
    if (!ok && signal.aborted) {
      // Interrupted, not failed: no status, so a resume runs it again.
      interrupted = true;
      progress(`${tag} interrupted`);
      break;
    }
    const endedAt = now();
    await writeCellStatus(o.dir, {
      format: RESULTS_FORMAT,
      id,
      cell,
      state: ok ? "done" : "failed",
      startedAt: cellStarted.toISOString(),
      endedAt: endedAt.toISOString(),
      records: writer.count,
      attempt: (previous?.attempt ?? 0) + 1,
      error: ok ? null : errorInfo(error),
    });
    const secs = ((endedAt.getTime() - cellStarted.getTime()) / 1000).toFixed(1);
    if (ok) {
      done++;
      progress(`${tag} done in ${secs} s (${writer.count} records)`);
    } else {
      failed++;
      const info = errorInfo(error);
      progress(`${tag} FAILED in ${secs} s${info.code ? ` [${info.code}]` : ""}: ${info.message}`);
    }
  }

  const endedAt = now().toISOString();
  const sessions = info.sessions.map((s, i) => (i === info.sessions.length - 1 ? { ...s, endedAt } : s));
  await writeRunInfo(o.dir, { ...info, endedAt: interrupted ? null : endedAt, sessions });
  await writeSummaries(await readResults(o.dir));
  progress(
    `finished: ${done} done, ${failed} failed, ${skipped} skipped${interrupted ? ", interrupted" : ""}`,
  );
  return { dir: o.dir, total: cells.length, skipped, done, failed, interrupted };
}
