/**
 * The host side of the guest's vpc-dirtier (images/guest/programs/vpc-dirtier.c): the command
 * lines that start it and take a mark, and the parser of its status line. A window's figures
 * are the difference of two marks (the dirtier publishes its exact state when marked).
 */
import { EvaluationError } from "./errors.js";
import type { GuestStallRecord } from "./format.js";

export const DIRTIER_STATUS = "/run/vpc-dirtier";
const DIRTIER_ERR = "/run/vpc-dirtier.err";

/** One status line of vpc-dirtier. */
export interface DirtierStatus {
  readonly marks: number;
  readonly pages: number;
  readonly hot: number;
  readonly cold: number;
  /** Guest monotonic time since the writes began. */
  readonly tMs: number;
  readonly gaps: number;
  readonly gapMs: number;
  /** Largest gap since the previous mark. */
  readonly maxGapMs: number;
  readonly writeGaps: number;
  readonly writeGapMs: number;
  /** Gap counts by lower bound in ms, in the program's order. */
  readonly histogram: Readonly<Record<string, number>>;
  readonly regionPages: number;
  readonly hotPages: number;
}

const NUMERIC_KEYS = {
  marks: "marks",
  pages: "pages",
  hot: "hot",
  cold: "cold",
  tMs: "t_ms",
  gaps: "gaps",
  gapMs: "gap_ms",
  maxGapMs: "max_gap_ms",
  writeGaps: "write_gaps",
  writeGapMs: "write_gap_ms",
  regionPages: "region_pages",
  hotPages: "hot_pages",
} as const;

function badStatus(line: string, why: string): never {
  throw new EvaluationError("CELL_FAILED", `vpc-dirtier status ${JSON.stringify(line)}: ${why}`);
}

export function parseDirtierStatus(line: string): DirtierStatus {
  const fields = new Map<string, string>();
  for (const part of line.trim().split(/\s+/)) {
    const eq = part.indexOf("=");
    if (eq > 0) fields.set(part.slice(0, eq), part.slice(eq + 1));
  }
  const num = (key: string): number => {
    const text = fields.get(key);
    const v = Number(text);
    if (text === undefined || text === "" || !Number.isFinite(v)) badStatus(line, `no number for ${key}`);
    return v;
  };
  const histogram: Record<string, number> = {};
  for (const bucket of (fields.get("hist_ms") ?? badStatus(line, "no hist_ms")).split(",")) {
    const [bound, count] = bucket.split(":");
    const n = Number(count);
    if (!bound || count === undefined || !Number.isInteger(n))
      badStatus(line, `bad hist_ms bucket ${bucket}`);
    histogram[bound] = n;
  }
  const out = Object.fromEntries(Object.entries(NUMERIC_KEYS).map(([name, key]) => [name, num(key)]));
  return { ...(out as Record<keyof typeof NUMERIC_KEYS, number>), histogram };
}

/** The dirtier's activity between two marks: the probe's part of a guest-stall record. */
export type DirtierWindow = Pick<
  GuestStallRecord,
  | "guestWindowMs"
  | "pagesWritten"
  | "gaps"
  | "gapMs"
  | "writeGaps"
  | "writeGapMs"
  | "maxGapMs"
  | "gapHistogram"
>;

export function dirtierWindow(from: DirtierStatus, to: DirtierStatus): DirtierWindow {
  if (to.marks <= from.marks || to.tMs < from.tMs || to.pages < from.pages) {
    throw new EvaluationError(
      "CELL_FAILED",
      `vpc-dirtier went backwards between two marks (marks ${from.marks} → ${to.marks}, t_ms ${from.tMs} → ${to.tMs}): it restarted?`,
    );
  }
  const gapHistogram: Record<string, number> = {};
  for (const [bound, n] of Object.entries(to.histogram))
    gapHistogram[bound] = n - (from.histogram[bound] ?? 0);
  return {
    guestWindowMs: to.tMs - from.tMs,
    pagesWritten: to.pages - from.pages,
    gaps: to.gaps - from.gaps,
    gapMs: to.gapMs - from.gapMs,
    writeGaps: to.writeGaps - from.writeGaps,
    writeGapMs: to.writeGapMs - from.writeGapMs,
    // max_gap_ms restarts at every mark: at `to` it is the largest gap of this window.
    maxGapMs: to.maxGapMs,
    gapHistogram,
  };
}

export interface DirtierParams {
  readonly regionMiB: number;
  readonly pagesPerSecond: number;
  readonly hotFraction: number;
}

/** Starts the dirtier detached from the SSH session; prints its PID (kept to signal it, never a name lookup). */
export function startDirtierCommand(p: DirtierParams): string {
  for (const [name, v] of Object.entries(p)) {
    if (!Number.isFinite(v) || v < 0)
      throw new EvaluationError("CONFIG", `vpc-dirtier ${name} must be ≥ 0, got ${v}`);
  }
  return (
    `vpc-dirtier -f ${DIRTIER_STATUS} -m ${p.regionMiB} -r ${p.pagesPerSecond} -h ${p.hotFraction} ` +
    `>/dev/null 2>${DIRTIER_ERR} </dev/null & echo $!`
  );
}

/**
 * Asks the dirtier (PID `pid`) for mark number `mark` and prints the status line it publishes
 * at that mark; fails when it is gone or does not answer within ~`limitS`.
 */
export function markDirtierCommand(pid: number, mark: number, limitS = 30): string {
  if (!Number.isInteger(pid) || pid <= 1) throw new EvaluationError("CONFIG", `bad vpc-dirtier PID ${pid}`);
  return (
    `kill -USR1 ${pid} || { echo "vpc-dirtier (PID ${pid}) is gone" >&2; cat ${DIRTIER_ERR} >&2; exit 1; }; ` +
    `i=0; until grep -q '^marks=${mark} ' ${DIRTIER_STATUS}; do i=$((i+1)); ` +
    `[ $i -gt ${limitS * 100} ] && { echo "vpc-dirtier did not publish mark ${mark}" >&2; exit 1; }; ` +
    `usleep 10000; done; cat ${DIRTIER_STATUS}`
  );
}
