/**
 * Command-line entry: `vpc predictor eval|generate|strategies …` (also the `vpc-predictor` bin).
 * The only module of the package that does I/O.
 */
import { parseArgs } from "node:util";
import { DirtyTraceWriter, iterateDirtyTrace, PageSetError } from "@vpc/pageset";
import { PredictorError } from "./errors.js";
import { type CostModel, type EvalReport, type FaultWindow, TraceEvaluator } from "./evaluate.js";
import { DEFAULT_STRATEGY_SPECS, parseStrategy, STRATEGY_KINDS } from "./registry.js";
import { generateTrace, type SyntheticOptions, WORKLOADS, type Workload } from "./synthetic.js";

export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

const processIo: CliIo = {
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
};

const USAGE = `usage:
  vpc predictor eval TRACE [--strategy SPEC]... [--strategies "SPEC SPEC ..."] [--window-ms MS]
                     [--copy-us US] [--fault-us US] [--protect-us US] [--protect-range-us US]
                     [--base-pause-us US] [--warmup N] [--json]
  vpc predictor generate WORKLOAD OUT [--pages N] [--intervals N] [--seed N] [--mode sync|async]
                     [--interval-ms MS] [--set NAME=VALUE]... [--overwrite] [--json]
  vpc predictor strategies [--json]
workloads: ${WORKLOADS.join(", ")}
`;

class UsageError extends Error {}

function numberFlag(name: string, v: string | undefined, min: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === "" || !Number.isFinite(n) || n < min)
    throw new UsageError(`--${name} must be a number >= ${min}, got "${v}"`);
  return n;
}

function fmt(v: number | null, digits: number): string {
  return v === null ? "-" : v.toFixed(digits);
}

/** The comparison table printed by `eval`. */
export function formatReport(report: EvalReport): string {
  const header = [
    "strategy",
    "precision",
    "recall",
    "mean |P|",
    "pause µs",
    "stall µs",
    "downtime µs",
    "vs cow",
  ];
  const rows = report.results.map((r) => [
    r.kind === "baseline" ? `(${r.name})` : r.name,
    fmt(r.precision, 3),
    fmt(r.recall, 3),
    r.meanPredicted.toFixed(0),
    r.meanPauseUs.toFixed(0),
    r.meanStallUs.toFixed(0),
    r.meanDowntimeUs.toFixed(0),
    fmt(r.downtimeVsCow, 2),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
  const w = report.window;
  const c = report.costs;
  const out = [
    `${report.checkpoints} checkpoints, ${report.pageCount} pages; mean |D| ${report.meanDirty.toFixed(0)}, ` +
      `mean |W| ${report.meanFaultable.toFixed(0)} (W = D ∩ ${w.kind === "interval" ? "next interval's writes" : `writes within ${w.windowNs / 1e6} ms of resume`})`,
    `costs: copy ${c.copyUs} µs/page, fault ${c.faultUs} µs, protect ${c.protectUs} µs/page${c.protectRangeUs === undefined ? "" : ` (at most ${c.protectRangeUs} µs)`}, base pause ${c.basePauseUs} µs`,
  ];
  if (report.windowFallbacks > 0)
    out.push(`note: ${report.windowFallbacks} records had no first-write order; W = whole interval there`);
  out.push("", line(header), line(widths.map((n) => "-".repeat(n))), ...rows.map(line));
  return `${out.join("\n")}\n`;
}

/** `vpc predictor eval TRACE ...`: argv starts after "eval". Returns the exit code. */
export async function runPredictorEval(argv: string[], io: CliIo = processIo): Promise<number> {
  return guard(io, async () => {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        strategy: { type: "string", multiple: true },
        strategies: { type: "string" },
        "window-ms": { type: "string" },
        "copy-us": { type: "string" },
        "fault-us": { type: "string" },
        "protect-us": { type: "string" },
        "base-pause-us": { type: "string" },
        "protect-range-us": { type: "string" },
        warmup: { type: "string" },
        json: { type: "boolean" },
      },
    });
    if (positionals.length !== 1) throw new UsageError("eval takes exactly one TRACE path");
    const specs = [
      ...(values.strategy ?? []),
      ...(values.strategies?.split(/\s+/).filter((s) => s !== "") ?? []),
    ];
    const strategies = (specs.length > 0 ? specs : DEFAULT_STRATEGY_SPECS).map(parseStrategy);
    const costs: Partial<CostModel> = {};
    const setCost = (k: keyof CostModel, flag: string) => {
      const v = numberFlag(flag, values[flag as "copy-us"], 0);
      if (v !== undefined) costs[k] = v;
    };
    setCost("copyUs", "copy-us");
    setCost("faultUs", "fault-us");
    setCost("protectUs", "protect-us");
    setCost("basePauseUs", "base-pause-us");
    setCost("protectRangeUs", "protect-range-us");
    const windowMs = numberFlag("window-ms", values["window-ms"], 0);
    const window: FaultWindow =
      windowMs === undefined ? { kind: "interval" } : { kind: "early", windowNs: windowMs * 1e6 };
    const warmup = numberFlag("warmup", values.warmup, 0) ?? 0;
    let evaluator: TraceEvaluator | undefined;
    for await (const item of iterateDirtyTrace(positionals[0]!)) {
      if (item.type === "header") {
        evaluator = new TraceEvaluator(item.header.pageCount, { strategies, costs, window, warmup });
      } else if (item.type === "record") {
        evaluator!.observe(item.record);
      }
    }
    const report = evaluator!.report();
    io.stdout(values.json === true ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report));
    return 0;
  });
}

const GENERATOR_SETTINGS = [
  "hotPages",
  "hotProb",
  "hotEarly",
  "noisePages",
  "phaseLength",
  "stride",
  "width",
  "writePages",
] as const;

/** `vpc predictor generate WORKLOAD OUT ...`: argv starts after "generate". */
export async function runPredictorGenerate(argv: string[], io: CliIo = processIo): Promise<number> {
  return guard(io, async () => {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        pages: { type: "string" },
        intervals: { type: "string" },
        seed: { type: "string" },
        mode: { type: "string" },
        "interval-ms": { type: "string" },
        set: { type: "string", multiple: true },
        overwrite: { type: "boolean" },
        json: { type: "boolean" },
      },
    });
    if (positionals.length !== 2) throw new UsageError("generate takes WORKLOAD and OUT");
    const [workload, out] = positionals as [string, string];
    if (!WORKLOADS.includes(workload as Workload)) throw new UsageError(`unknown workload "${workload}"`);
    const mode = values.mode ?? "sync";
    if (mode !== "sync" && mode !== "async")
      throw new UsageError(`--mode must be sync or async, got "${mode}"`);
    const opts: SyntheticOptions = {
      workload: workload as Workload,
      pageCount: numberFlag("pages", values.pages, 64) ?? 65536,
      intervals: numberFlag("intervals", values.intervals, 1) ?? 30,
      seed: numberFlag("seed", values.seed, 0) ?? 1,
      intervalNs: (numberFlag("interval-ms", values["interval-ms"], 0) ?? 1000) * 1e6,
      mode,
    };
    for (const s of values.set ?? []) {
      const [k, v] = s.split("=", 2) as [string, string | undefined];
      if (!(GENERATOR_SETTINGS as readonly string[]).includes(k)) {
        throw new UsageError(`unknown setting "${k}" (known: ${GENERATOR_SETTINGS.join(", ")})`);
      }
      opts[k as (typeof GENERATOR_SETTINGS)[number]] = numberFlag(`set ${k}`, v ?? "", 0)!;
    }
    const trace = generateTrace(opts);
    const w = await DirtyTraceWriter.create(out, trace.header, { overwrite: values.overwrite === true });
    try {
      for (const r of trace.records) await w.append(r);
    } finally {
      await w.close();
    }
    io.stdout(
      values.json === true
        ? `${JSON.stringify({ path: out, intervals: trace.records.length, header: trace.header, options: opts }, null, 2)}\n`
        : `wrote ${trace.records.length} intervals of ${workload} (${opts.pageCount} pages, ${mode}) to ${out}\n`,
    );
    return 0;
  });
}

async function listStrategies(argv: string[], io: CliIo): Promise<number> {
  return guard(io, async () => {
    const { values } = parseArgs({ args: argv, options: { json: { type: "boolean" } } });
    if (values.json === true) {
      const kinds = STRATEGY_KINDS.map(({ kind, description, wraps, params }) => ({
        kind,
        description,
        wraps,
        params,
      }));
      io.stdout(`${JSON.stringify({ strategies: kinds, defaults: DEFAULT_STRATEGY_SPECS }, null, 2)}\n`);
      return 0;
    }
    return printStrategies(io);
  });
}

function printStrategies(io: CliIo): number {
  for (const k of STRATEGY_KINDS) {
    io.stdout(`${k.kind}${k.wraps ? "(SPEC)" : ""}: ${k.description}\n`);
    for (const p of k.params) {
      io.stdout(`  ${p.name}${p.default === undefined ? "" : `=${p.default}`}  ${p.description}\n`);
    }
  }
  return 0;
}

/** Turns usage and typed errors into a message and exit code 2 (usage) or 1 (data). */
async function guard(io: CliIo, fn: () => Promise<number>): Promise<number> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof UsageError) {
      io.stderr(`error: ${e.message}\n${USAGE}`);
      return 2;
    }
    if (e instanceof TypeError && "code" in e && String(e.code).startsWith("ERR_PARSE_ARGS")) {
      // parseArgs explains an unknown option in terms of its own API ("To specify a positional …").
      const option = /'(-[^' ]*)/.exec(e.message)?.[1];
      const unknown = e.code === "ERR_PARSE_ARGS_UNKNOWN_OPTION" && option !== undefined;
      io.stderr(`error: ${unknown ? `unknown option ${option}` : e.message}\n${USAGE}`);
      return 2;
    }
    if (PredictorError.isInstance(e) || PageSetError.isInstance(e)) {
      io.stderr(`error: ${e.message}\n`);
      return PredictorError.isInstance(e) && e.code !== "INVALID_ARGUMENT" ? 2 : 1;
    }
    throw e;
  }
}

/** `vpc predictor <command> ...`: argv starts after "predictor". */
export async function runPredictorCli(argv: string[], io: CliIo = processIo): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === "eval") return runPredictorEval(rest, io);
  if (cmd === "generate") return runPredictorGenerate(rest, io);
  if (cmd === "strategies") return listStrategies(rest, io);
  if (cmd === "help" || cmd === "--help" || cmd === "-h") {
    io.stdout(USAGE);
    return 0;
  }
  io.stderr(`${cmd === undefined ? "missing command" : `unknown command "${cmd}"`}\n${USAGE}`);
  return 2;
}
