/** CSV summaries of a results directory (`summary/*.csv`), rewritten after every run and by `vpc report`. */
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { type Analysis, analyze, type ClaimRow, type GroupRow, type GuestFelt } from "./analyze.js";
import { type CsvValue, objectsToCsv, toCsv } from "./csv.js";
import type { Cell } from "./format.js";
import { type Results, SUMMARY_DIR, writeFileAtomic } from "./results-dir.js";

const CELL_COLUMNS: readonly (keyof Cell & string)[] = [
  "experiment",
  "kernel",
  "cls",
  "engine",
  "vms",
  "hosts",
  "intervalMs",
  "memMiB",
  "kernelRuns",
  "mode",
  "chainLength",
  "rep",
  "dirtyRate",
  "hotFraction",
];

export const GROUP_COLUMNS: readonly (keyof GroupRow & string)[] = [
  ...CELL_COLUMNS.filter((c): c is keyof GroupRow & typeof c => c !== "rep" && c !== "mode"),
  "cells",
  "failedCells",
  "checkpoints",
  "failedCheckpoints",
  "soloDowntimeMedianMs",
  "soloDowntimeP95Ms",
  "pauseMedianMs",
  "pauseP95Ms",
  "stallMedianMs",
  "memoryOverheadMax",
  "memoryOverheadMedian",
  "checkpointBytesMedian",
  "precision",
  "recall",
  "predictionApproximate",
  "wallMedianMs",
  "runtimeOverhead",
  "verifiedRuns",
  "kernelRunsTotal",
  "vcDowntimeMedianMs",
  "vcDowntimeP95Ms",
  "heldFrames",
  "loggedFrames",
  "restoreMedianMs",
  "restoreP95Ms",
  "restores",
  "restoresVerified",
  "restoresChecked",
  "pagesDirtyMedian",
];

/** sweep: the guest-side figures of a group, per checkpoint (GuestFelt), as groups.csv columns. */
const GUEST_COLUMNS: readonly (keyof GuestFelt & string)[] = [
  "checkpoints",
  "stoppedMs",
  "writeGapMs",
  "baselineWriteGapMs",
  "stallMs",
  "downtimeMs",
  "gapMs",
  "baselineGapMs",
  "maxGapMs",
  "rate",
  "baselineRate",
];
const guestColumn = (k: string) => `guest${k[0]?.toUpperCase()}${k.slice(1)}`;

function groupsCsv(groups: readonly GroupRow[]): string {
  return toCsv(
    [...GROUP_COLUMNS, ...GUEST_COLUMNS.map(guestColumn)],
    groups.map((g) => [
      ...GROUP_COLUMNS.map((c) => g[c] as CsvValue),
      ...GUEST_COLUMNS.map((c) => g.guest?.[c]),
    ]),
  );
}

/** One row per group and pause step: the step's median over the group's figure checkpoints. */
function stepsCsv(groups: readonly GroupRow[]): string {
  const key = GROUP_COLUMNS.slice(0, GROUP_COLUMNS.indexOf("hotFraction") + 1);
  return toCsv(
    [...key, "checkpoints", "step", "medianMs"],
    groups.flatMap((g) =>
      Object.entries(g.stepsMedianMs).map(([step, ms]) => [
        ...key.map((c) => g[c] as CsvValue),
        g.checkpoints,
        step,
        ms,
      ]),
    ),
  );
}

const CLAIM_COLUMNS: readonly (keyof ClaimRow & string)[] = [
  "source",
  "claim",
  "measure",
  "comparator",
  "threshold",
  "measured",
  "status",
  "detail",
];

/** Every record of every cell, one row each, with its cell's fields in front. */
function recordsCsv(results: Results): string {
  const recordKeys = new Set<string>();
  for (const c of results.cells) for (const r of c.records) for (const k of Object.keys(r)) recordKeys.add(k);
  recordKeys.delete("error");
  const keys = [...recordKeys];
  const rows: CsvValue[][] = [];
  for (const c of results.cells) {
    for (const r of c.records) {
      const o = r as unknown as Record<string, unknown>;
      const err = r.type === "checkpoint-failure" ? r.error.message : null;
      rows.push([
        c.id,
        ...CELL_COLUMNS.map((k) => c.status.cell[k]),
        // Objects (a checkpoint's steps and metrics, a gap histogram) as JSON in one field.
        ...keys.map((k) =>
          typeof o[k] === "object" && o[k] !== null ? JSON.stringify(o[k]) : (o[k] as CsvValue),
        ),
        err,
      ]);
    }
  }
  return toCsv(["cell", ...CELL_COLUMNS, ...keys, "error"], rows);
}

function cellsCsv(results: Results): string {
  return toCsv(
    ["cell", ...CELL_COLUMNS, "state", "records", "attempt", "startedAt", "endedAt", "errorCode", "error"],
    results.cells.map((c) => [
      c.id,
      ...CELL_COLUMNS.map((k) => c.status.cell[k]),
      c.status.state,
      c.status.records,
      c.status.attempt,
      c.status.startedAt,
      c.status.endedAt,
      c.status.error?.code,
      c.status.error?.message,
    ]),
  );
}

/** Writes summary/cells.csv, records.csv, groups.csv, steps.csv and claims.csv; returns the analysis. */
export async function writeSummaries(results: Results): Promise<Analysis> {
  const a = analyze(results);
  const dir = join(results.dir, SUMMARY_DIR);
  await mkdir(dir, { recursive: true });
  await writeFileAtomic(join(dir, "cells.csv"), cellsCsv(results));
  await writeFileAtomic(join(dir, "records.csv"), recordsCsv(results));
  await writeFileAtomic(join(dir, "groups.csv"), groupsCsv(a.groups));
  await writeFileAtomic(join(dir, "steps.csv"), stepsCsv(a.groups));
  await writeFileAtomic(join(dir, "claims.csv"), objectsToCsv(CLAIM_COLUMNS, a.claims));
  return a;
}
