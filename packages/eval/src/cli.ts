/** `vpc eval` and `vpc report` (dispatched from @vpc/cli). */
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { EvaluationError } from "./errors.js";
import { presetConfig } from "./experiments.js";
import { EXPERIMENT_NAMES, type PresetName } from "./format.js";
import { gitFacts, machineFacts } from "./machine.js";
import { writeReport } from "./report.js";
import { type CellExecutor, runExperiments, timestampDirName } from "./runner.js";

export interface EvalCliIo {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
}

export const EVAL_USAGE = `Usage: vpc eval NAME... [--quick|--full] [--out DIR] [--resume DIR] [--json]

Runs evaluation experiments into a results directory (default results/<UTC timestamp>).
NAME: ${EXPERIMENT_NAMES.join(", ")}, or all.

Options:
      --quick        small preset, about ten minutes per experiment on 2 cores (default)
      --full         the full evaluation plan
      --out DIR      write the results here (must not hold results yet)
      --resume DIR   go on with an interrupted run: done cells are skipped, failed ones run again
      --json         progress on stderr; stdout gets one JSON object: the directory and cell counts
  -h, --help         show this help

Exit status: 0 every cell done, 1 some cell failed or the run was interrupted, 2 usage error.`;

export const REPORT_USAGE = `Usage: vpc report RESULTS_DIR [--out DIR] [--json]

Validates RESULTS_DIR, rewrites its summary/*.csv, and writes report.md, report.html and
charts/*.svg into DIR (default RESULTS_DIR/report). With --json, prints the written paths and
every claim's status as one JSON object.

Exit status: 0 written, 1 the results are missing or corrupt, 2 usage error.`;

export interface EvalCliDeps {
  /** The cell executors (tests inject fakes; default: the real ones on QEMU). */
  readonly executor?: (experiment: (typeof EXPERIMENT_NAMES)[number]) => CellExecutor;
  readonly signal?: AbortSignal;
}

class UsageError extends Error {}

/** A usage message in vpc's words: parseArgs explains unknown options in terms of its own API. */
function usageMessage(e: unknown): string {
  const message = e instanceof Error ? e.message : String(e);
  const option = /'(-[^' ]*)/.exec(message)?.[1];
  const unknown = (e as { code?: unknown }).code === "ERR_PARSE_ARGS_UNKNOWN_OPTION" && option !== undefined;
  return unknown ? `unknown option ${option}` : message;
}

function describe(e: unknown): string {
  if (EvaluationError.isInstance(e)) return `${e.message} [${e.code}]`;
  return e instanceof Error ? e.message : String(e);
}

export async function runEvalCli(
  args: readonly string[],
  io: EvalCliIo,
  deps: EvalCliDeps = {},
): Promise<number> {
  let values: {
    quick: boolean;
    full: boolean;
    out?: string | undefined;
    resume?: string | undefined;
    json: boolean;
    help: boolean;
  };
  let names: string[];
  try {
    const parsed = parseArgs({
      args: [...args],
      allowPositionals: true,
      strict: true,
      options: {
        quick: { type: "boolean", default: false },
        full: { type: "boolean", default: false },
        out: { type: "string" },
        resume: { type: "string" },
        json: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
    });
    values = parsed.values;
    names = parsed.positionals.flatMap((n) => (n === "all" ? [...EXPERIMENT_NAMES] : [n]));
    if (values.help) {
      io.stdout(`${EVAL_USAGE}\n`);
      return 0;
    }
    if (values.quick && values.full) throw new UsageError("--quick and --full exclude each other");
    if (
      values.resume !== undefined &&
      (values.out !== undefined || names.length > 0 || values.full || values.quick)
    ) {
      throw new UsageError("--resume DIR takes no experiment names or presets: run.json in DIR holds them");
    }
    if (values.resume === undefined && names.length === 0)
      throw new UsageError("name at least one experiment");
  } catch (e) {
    io.stderr(`vpc eval: ${usageMessage(e)}\n\n${EVAL_USAGE}\n`);
    return 2;
  }
  const preset: PresetName = values.full ? "full" : "quick";
  let experiments: ReturnType<typeof presetConfig>[];
  try {
    experiments = [...new Set(names)].map((n) => presetConfig(n, preset));
  } catch (e) {
    io.stderr(`vpc eval: ${describe(e)}\n\n${EVAL_USAGE}\n`);
    return 2;
  }
  const dir = resolve(values.resume ?? values.out ?? join("results", timestampDirName(new Date())));
  const executor = deps.executor ?? (await import("./executors.js")).realExecutor;
  try {
    const summary = await runExperiments({
      experiments,
      preset,
      dir,
      resume: values.resume !== undefined,
      executor,
      machine: () => machineFacts(),
      git: await gitFacts(),
      argv: ["eval", ...args],
      progress: (line) => (values.json ? io.stderr : io.stdout)(`${line}\n`),
      ...(deps.signal ? { signal: deps.signal } : {}),
    });
    io.stdout(
      values.json
        ? `${JSON.stringify({ ...summary, next: `vpc report ${dir}` }, null, 2)}\n`
        : `next: vpc report ${dir}\n`,
    );
    return summary.failed === 0 && !summary.interrupted ? 0 : 1;
  } catch (e) {
    io.stderr(`vpc eval: ${describe(e)}\n`);
    return 1;
  }
}

export async function runReportCli(args: readonly string[], io: EvalCliIo): Promise<number> {
  let dir: string;
  let out: string | undefined;
  let json = false;
  try {
    const { values, positionals } = parseArgs({
      args: [...args],
      allowPositionals: true,
      strict: true,
      options: {
        out: { type: "string" },
        json: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
    });
    if (values.help) {
      io.stdout(`${REPORT_USAGE}\n`);
      return 0;
    }
    if (positionals.length !== 1) throw new UsageError("give exactly one RESULTS_DIR");
    dir = positionals[0] as string;
    out = values.out;
    json = values.json;
  } catch (e) {
    io.stderr(`vpc report: ${usageMessage(e)}\n\n${REPORT_USAGE}\n`);
    return 2;
  }
  try {
    const r = await writeReport(dir, out);
    if (json) {
      const { markdownPath, htmlPath, chartPaths } = r;
      io.stdout(
        `${JSON.stringify({ markdownPath, htmlPath, chartPaths, claims: r.analysis.claims }, null, 2)}\n`,
      );
      return 0;
    }
    io.stdout(`${r.markdownPath}\n${r.htmlPath}\n${r.chartPaths.length} chart(s)\n`);
    const missed = r.analysis.claims.filter((c) => c.source === "target");
    for (const c of missed) io.stdout(`  target ${c.status.padEnd(12)} ${c.claim}\n`);
    return 0;
  } catch (e) {
    io.stderr(`vpc report: ${describe(e)}\n`);
    return 1;
  }
}
