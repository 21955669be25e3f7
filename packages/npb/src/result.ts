import { NpbError } from "./errors.js";

export const NPB_KERNELS = ["ep", "is", "cg", "mg", "ft"] as const;
export type NpbKernel = (typeof NPB_KERNELS)[number];

export const NPB_CLASSES = ["S", "W", "A", "B", "C"] as const;
export type NpbClass = (typeof NPB_CLASSES)[number];

/** The NPB-style result block of one run, as printed by rank 0. */
export interface NpbResult {
  kernel: NpbKernel;
  class: NpbClass;
  /** Problem size as printed, without spaces: "33554432" or "64x64x64". */
  size: string;
  /** The size split into its integer factors: [33554432] or [64, 64, 64]. */
  dimensions: number[];
  iterations: number;
  /** "Time in seconds": the timed region, max over processes (2 decimals as printed). */
  seconds: number;
  mopsTotal: number;
  /** "Total processes". */
  processes: number;
  verified: boolean;
}

export function isNpbKernel(s: string): s is NpbKernel {
  return (NPB_KERNELS as readonly string[]).includes(s);
}

export function isNpbClass(s: string): s is NpbClass {
  return (NPB_CLASSES as readonly string[]).includes(s);
}

const COMPLETED = /^\s*([A-Z]{2})\s+Benchmark Completed\.?\s*$/;
// A report line: label, "=", value (the label is padded to 16 columns, "Active processes=" has none).
const FIELD = /^\s*([A-Za-z/ ]+?)\s*=\s*(.*?)\s*$/;

/**
 * Parses the result block ("XX Benchmark Completed." followed by "Label = value" lines) out of a
 * kernel's whole stdout. Text before the block is ignored, as are CR line ends and lines inside
 * or after it that are not "label = value". Throws NpbError RESULT_MISSING when there is no block, and
 * RESULT_MALFORMED (with `field`) when a required line is missing or unparsable, or when the
 * output holds more than one block (which would make the answer ambiguous).
 */
export function parseNpbResult(stdout: string): NpbResult {
  const lines = stdout.split(/\r?\n|\r/);
  const starts: number[] = [];
  lines.forEach((l, i) => {
    if (COMPLETED.test(l)) starts.push(i);
  });
  const start = starts[0];
  if (start === undefined) {
    throw new NpbError("RESULT_MISSING", 'no "Benchmark Completed" result block in the output', {
      stdout,
    });
  }
  if (starts.length > 1) {
    throw new NpbError("RESULT_MALFORMED", `${starts.length} result blocks in the output, expected one`, {
      field: "Benchmark Completed",
      stdout,
    });
  }
  const name = COMPLETED.exec(lines[start] ?? "")?.[1]?.toLowerCase() ?? "";
  if (!isNpbKernel(name)) {
    throw new NpbError("RESULT_MALFORMED", `unknown benchmark "${name.toUpperCase()}"`, {
      field: "Benchmark Completed",
      stdout,
    });
  }

  // Take the first line of each label after the header. Lines that are not "label = value" are
  // skipped rather than ending the block, so stray lines interleaved by mpiexec (warnings from
  // other ranks or the launcher) do not hide the fields after them.
  const fields = new Map<string, string>();
  for (const line of lines.slice(start + 1)) {
    const m = FIELD.exec(line);
    if (!m) continue;
    const label = (m[1] ?? "").trim();
    if (!fields.has(label)) fields.set(label, m[2] ?? "");
  }

  const get = (label: string): string => {
    const v = fields.get(label);
    if (v === undefined || v === "") {
      throw new NpbError("RESULT_MALFORMED", `result block has no "${label}" line`, {
        field: label,
        stdout,
      });
    }
    return v;
  };
  const bad = (label: string, value: string, want: string): NpbError =>
    new NpbError("RESULT_MALFORMED", `"${label}" is "${value}", expected ${want}`, {
      field: label,
      stdout,
    });
  const integer = (label: string): number => {
    const v = get(label);
    if (!/^\d+$/.test(v)) throw bad(label, v, "a non-negative integer");
    return Number(v);
  };
  const decimal = (label: string): number => {
    const v = get(label);
    if (!/^[+-]?(\d+\.?\d*|\.\d+)([eEdD][+-]?\d+)?$/.test(v)) throw bad(label, v, "a number");
    return Number(v.replace(/[dD]/, "e"));
  };

  // checked in block order, so a truncated block reports its first missing line
  const cls = get("Class");
  if (!isNpbClass(cls)) throw bad("Class", cls, `one of ${NPB_CLASSES.join(", ")}`);
  const size = get("Size").replace(/\s+/g, "");
  if (!/^\d+(x\d+)*$/.test(size)) throw bad("Size", size, "N or NxNxN");
  const iterations = integer("Iterations");
  const seconds = decimal("Time in seconds");
  const processes = integer("Total processes");
  const mopsTotal = decimal("Mop/s total");
  const verification = get("Verification");
  if (verification !== "SUCCESSFUL" && verification !== "UNSUCCESSFUL") {
    throw bad("Verification", verification, "SUCCESSFUL or UNSUCCESSFUL");
  }
  return {
    kernel: name,
    class: cls,
    size,
    dimensions: size.split("x").map(Number),
    iterations,
    seconds,
    mopsTotal,
    processes,
    verified: verification === "SUCCESSFUL",
  };
}
