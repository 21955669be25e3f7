/**
 * `vpc report`: a Markdown report and a self-contained HTML page (inline SVG charts) built from
 * one document model, so both always say the same thing.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  type Analysis,
  analyze,
  type ClaimRow,
  type EngineSteps,
  type GroupRow,
  type VcPauseSteps,
} from "./analyze.js";
import { type Chart, downtimeSeries, renderCharts } from "./charts.js";
import { expandCells } from "./experiments.js";
import { cellId, type ExperimentName, NO_CHECKPOINT } from "./format.js";
import { type Results, readResults } from "./results-dir.js";
import { writeSummaries } from "./summary.js";

export interface Table {
  readonly header: readonly string[];
  readonly rows: readonly (readonly string[])[];
}

export interface Section {
  readonly title: string;
  readonly text: readonly string[];
  readonly table?: Table;
  readonly chart?: string;
  /** Shell commands, shown as a code block. */
  readonly code?: readonly string[];
}

export interface ReportDocument {
  readonly title: string;
  readonly sections: readonly Section[];
}

const DASH = "–";
const ms = (x: number | null) => (x === null ? DASH : x.toFixed(2));
const pct = (x: number | null) => (x === null ? DASH : `${(x * 100).toFixed(1)}%`);
const frac = (x: number | null) => (x === null ? DASH : x.toFixed(3));
const bytes = (x: number | null) =>
  x === null ? DASH : x >= 1 << 20 ? `${(x / (1 << 20)).toFixed(2)} MiB` : `${(x / 1024).toFixed(1)} KiB`;
const kernelOf = (r: GroupRow) => `${r.kernel.toUpperCase()}.${r.cls}`;

/** Formats a claim's number the way its threshold is read (percent for overheads, ratio otherwise). */
export function formatClaimValue(c: ClaimRow, x: number | null): string {
  if (x === null) return DASH;
  return c.measure.includes("overhead") ? pct(x) : frac(x);
}

function claimsTable(claims: readonly ClaimRow[]): Table {
  return {
    header: ["source", "claim", "measure", "threshold", "measured (worst case)", "status", "per case"],
    rows: claims.map((c) => [
      c.source,
      c.claim,
      c.measure,
      `${c.comparator} ${formatClaimValue(c, c.threshold)}`,
      formatClaimValue(c, c.measured),
      c.status,
      c.detail || DASH,
    ]),
  };
}

const byExp = (rows: readonly GroupRow[], e: ExperimentName) => rows.filter((r) => r.experiment === e);

const PAUSE_ONLY_NOTE =
  "qemu-snapshot (pause only): its figure is QEMU's own reported downtime; the vCPU stalls in its write-protect faults after resume are not measured by QEMU and not in it (see the sweep's guest-felt downtime for both measured alike).";

function soloTable(rows: readonly GroupRow[]): Table {
  return {
    header: [
      "kernel",
      "engine",
      "checkpoints",
      "downtime median ms",
      "downtime p95 ms",
      "pause median ms",
      "stall median ms",
      "memory overhead (peak)",
      "checkpoint size (median)",
      "run-time overhead",
      "verified runs",
      "failed cells",
    ],
    rows: rows.map((r) => [
      kernelOf(r),
      downtimeSeries(r.engine),
      String(r.checkpoints),
      ms(r.soloDowntimeMedianMs),
      ms(r.soloDowntimeP95Ms),
      ms(r.pauseMedianMs),
      ms(r.stallMedianMs),
      pct(r.memoryOverheadMax),
      bytes(r.checkpointBytesMedian),
      r.engine === NO_CHECKPOINT ? "baseline" : pct(r.runtimeOverhead),
      `${r.verifiedRuns}/${r.kernelRunsTotal}`,
      String(r.failedCells),
    ]),
  };
}

function sweepTable(rows: readonly GroupRow[]): Table {
  const g = (r: GroupRow, f: (x: NonNullable<GroupRow["guest"]>) => number) =>
    r.guest ? ms(f(r.guest)) : DASH;
  return {
    header: [
      "pages/s",
      "hot fraction",
      "engine",
      "checkpoints",
      "dirty pages per interval (median)",
      "solo VM downtime median ms (engine's own)",
      "pause median ms",
      "stall median ms",
      "QEMU stopped ms / checkpoint",
      "guest write stalls ms / checkpoint (raw)",
      "baseline write stalls ms / checkpoint",
      "guest-felt downtime ms / checkpoint",
      "largest gap ms",
      "page writes/s (checkpointing / baseline)",
      "failed cells",
    ],
    rows: rows.map((r) => [
      String(r.dirtyRate ?? DASH),
      String(r.hotFraction ?? DASH),
      downtimeSeries(r.engine),
      String(r.checkpoints),
      r.pagesDirtyMedian === null
        ? DASH
        : `${Math.round(r.pagesDirtyMedian)}${r.engine.startsWith("qemu-") ? " (all RAM)" : ""}`,
      ms(r.soloDowntimeMedianMs),
      ms(r.pauseMedianMs),
      ms(r.stallMedianMs),
      g(r, (x) => x.stoppedMs),
      g(r, (x) => x.writeGapMs),
      g(r, (x) => x.baselineWriteGapMs),
      g(r, (x) => x.downtimeMs),
      g(r, (x) => x.maxGapMs),
      r.guest ? `${Math.round(r.guest.rate)} / ${Math.round(r.guest.baselineRate)}` : DASH,
      String(r.failedCells),
    ]),
  };
}

/** Median ms per pause step per engine; one column per step name seen, in first-seen order. */
function stepsTable(steps: readonly EngineSteps[]): Table {
  const names = [...new Set(steps.flatMap((e) => Object.keys(e.stepsMedianMs)))];
  return {
    header: ["engine", "checkpoints", "pause median ms", ...names.map((n) => `${n} (median)`)],
    rows: steps.map((e) => [
      downtimeSeries(e.engine),
      String(e.checkpoints),
      ms(e.pauseMedianMs),
      ...names.map((n) => ms(e.stepsMedianMs[n] ?? null)),
    ]),
  };
}

/** Median ms per step of the VMs' pauses in global checkpoints, per engine, with the hosts' spread. */
function vcStepsTable(steps: readonly VcPauseSteps[]): Table {
  const names = [...new Set(steps.flatMap((e) => Object.keys(e.stepsMedianMs)))];
  return {
    header: ["engine", "epochs", "VM pauses", "spread median ms", ...names.map((n) => `${n} (median)`)],
    rows: steps.map((e) => [
      downtimeSeries(e.engine),
      String(e.epochs),
      String(e.vmPauses),
      ms(e.spreadMedianMs),
      ...names.map((n) => ms(e.stepsMedianMs[n] ?? null)),
    ]),
  };
}

function vcTable(rows: readonly GroupRow[]): Table {
  return {
    header: [
      "kernel",
      "engine",
      "VMs",
      "hosts",
      "VC downtime median ms",
      "VC downtime p95 ms",
      "held frames",
      "logged frames",
      "run-time overhead",
      "failed cells",
    ],
    rows: rows.map((r) => [
      kernelOf(r),
      r.engine,
      String(r.vms),
      String(r.hosts),
      ms(r.vcDowntimeMedianMs),
      ms(r.vcDowntimeP95Ms),
      String(r.heldFrames),
      String(r.loggedFrames),
      r.engine === NO_CHECKPOINT ? "baseline" : pct(r.runtimeOverhead),
      String(r.failedCells),
    ]),
  };
}

function intervalTable(rows: readonly GroupRow[]): Table {
  return {
    header: [
      "kernel",
      "engine",
      "interval s",
      "run-time overhead",
      "downtime median ms",
      "downtime p95 ms",
      "memory overhead (peak)",
      "failed cells",
    ],
    rows: rows.map((r) => [
      kernelOf(r),
      r.engine,
      r.engine === NO_CHECKPOINT ? DASH : String(r.intervalMs / 1000),
      r.engine === NO_CHECKPOINT ? "baseline" : pct(r.runtimeOverhead),
      ms(r.soloDowntimeMedianMs),
      ms(r.soloDowntimeP95Ms),
      pct(r.memoryOverheadMax),
      String(r.failedCells),
    ]),
  };
}

function predictorTable(rows: readonly GroupRow[]): Table {
  return {
    header: [
      "kernel",
      "strategy",
      "checkpoints",
      "precision",
      "recall",
      "exact",
      "downtime median ms",
      "failed cells",
    ],
    rows: rows.map((r) => [
      kernelOf(r),
      r.engine,
      String(r.checkpoints),
      frac(r.precision),
      frac(r.recall),
      r.predictionApproximate === null ? DASH : r.predictionApproximate ? "no (upper bound)" : "yes",
      ms(r.soloDowntimeMedianMs),
      String(r.failedCells),
    ]),
  };
}

function restoreTable(rows: readonly GroupRow[]): Table {
  return {
    header: [
      "engine",
      "guest RAM MiB",
      "chain length",
      "VMs",
      "hosts",
      "restores",
      "NPB verified after restore",
      "restore median ms",
      "restore p95 ms",
      "failed cells",
    ],
    rows: rows.map((r) => [
      r.engine,
      String(r.memMiB),
      r.chainLength === null ? DASH : String(r.chainLength),
      String(r.vms),
      String(r.hosts),
      String(r.restores),
      r.restoresChecked === 0 ? "not checked" : `${r.restoresVerified} of ${r.restoresChecked}`,
      ms(r.restoreMedianMs),
      ms(r.restoreP95Ms),
      String(r.failedCells),
    ]),
  };
}

/** Quotes an argument for a POSIX shell when it needs it. */
export function shellQuote(s: string): string {
  return /^[A-Za-z0-9_./:=@%+,-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

function reproduce(results: Results): string[] {
  const r = results.run;
  const first = r.sessions[0]?.argv ?? [];
  const evalCmd =
    first.length > 0
      ? `npx vpc ${first.map(shellQuote).join(" ")}`
      : `npx vpc eval ${r.experiments.map((e) => e.experiment).join(" ")} ${r.preset === "full" ? "--full" : "--quick"}`;
  return [
    ...(r.gitCommit ? [`git checkout ${r.gitCommit}`] : []),
    "npm ci && npm run build",
    "make images   # guest image with the NPB kernels",
    evalCmd,
    `npx vpc report ${shellQuote(results.dir)}`,
  ];
}

export function buildReport(results: Results, a: Analysis, charts: readonly Chart[]): ReportDocument {
  const r = results.run;
  const m = r.machine;
  const has = (id: string) => charts.some((c) => c.id === id);
  const expected = r.experiments.flatMap((e) => expandCells(e));
  const present = new Set(results.cells.map((c) => c.id));
  const missing = expected.filter((c) => !present.has(cellId(c)));
  const done = results.cells.filter((c) => c.status.state === "done").length;
  const sections: Section[] = [
    {
      title: "Run",
      text: [
        `Results directory \`${results.dir}\`; preset \`${r.preset}\`; experiments ${r.experiments.map((e) => `\`${e.experiment}\``).join(", ")}.`,
        `Started ${r.startedAt}, ${r.endedAt ? `ended ${r.endedAt}` : "not finished (interrupted or still running)"}; ${r.sessions.length} session(s).`,
        `Machine: ${m.cpuModel}, ${m.cores} cores, Linux ${m.kernel}, QEMU ${m.qemuVersion ?? "unknown"}, accelerator ${m.accelerator ?? "unknown"}, Node ${m.node}, host ${m.hostname}.`,
        `Commit ${r.gitCommit ?? "unknown"}${r.gitDirty ? " (with uncommitted changes)" : ""}.`,
        `Cells: ${done} done, ${a.failed.length} failed, ${missing.length} not run, of ${expected.length}.`,
      ],
    },
    {
      title: "Paper claims and our targets",
      text: [
        "Each row compares the worst measured case (over kernels, or VM counts for VC downtime) with the threshold; the per-case values follow. " +
          "Ratios compare medians of the same kernel in the same run. `not measured` means the cells that would measure it did not run or failed (see Failed cells). " +
          "Why a target is missed is for the reader to find in the tables below (pause vs. stall, pages copied in the pause, COW faults).",
      ],
      table: claimsTable(a.claims),
    },
  ];
  const solo = byExp(a.groups, "solo");
  if (solo.length > 0)
    sections.push({
      title: "Solo VM downtime (experiment `solo`)",
      text: [
        "Figures over incremental checkpoints (QEMU's engines are full every time: all of theirs). Run-time overhead: median wall time ÷ the `none` run − 1.",
        PAUSE_ONLY_NOTE,
      ],
      table: soloTable(solo),
      ...(has("solo-downtime") ? { chart: "solo-downtime" } : {}),
    });
  const npb = byExp(a.groups, "npb");
  const npbSolo = npb.filter((g) => g.vms === 1);
  if (npbSolo.length > 0)
    sections.push({
      title: "NPB at sizes that matter, one VM (experiment `npb`)",
      text: [
        "The kernels at classes W/A with guests sized to them: dirty sets of thousands of pages per interval, where COW and prediction have something to save. Figures as in the solo table.",
        PAUSE_ONLY_NOTE,
      ],
      table: soloTable(npbSolo),
    });
  const npbVc = npb.filter((g) => g.vms > 1);
  if (npbVc.length > 0)
    sections.push({
      title: "NPB at sizes that matter, virtual clusters (experiment `npb`)",
      text: ["One rank per VM across the cluster; VC downtime as in the vc-scale table."],
      table: vcTable(npbVc),
    });
  const sweep = byExp(a.groups, "sweep");
  if (sweep.length > 0)
    sections.push({
      title: "Dirty-rate sweep (experiment `sweep`)",
      text: [
        "The guest's vpc-dirtier writes N pages/s, a fraction h of them round robin over a small hot set (rewritten about every 100 ms: what a predictor can learn), the rest scattered over a cold region; one engine checkpoints every interval. The x axis of the charts is the dirty pages per interval the agent engines harvested at each (N, h) point; QEMU's engines are drawn at the same x.",
        "Guest-felt downtime per checkpoint is measured the same way for every engine: the time QEMU had the VM stopped (its STOP→RESUME events; a stop is invisible to the guest's clock, QEMU stops it with the vCPUs) plus the time vpc-dirtier's page writes stalled by ≥ 1 ms, minus what its baseline window without checkpoints showed over the same guest time (the noise floor of a shared host). It is the honest figure next to qemu-snapshot, whose `pauseMs` is QEMU's internal downtime and leaves out its write-protect stalls after resume. Stalls the dirtier felt while it slept (the guest kernel's own writes) are not in it.",
        PAUSE_ONLY_NOTE,
      ],
      table: sweepTable(sweep),
      ...(has("sweep-downtime") ? { chart: "sweep-downtime" } : {}),
    });
  if (has("sweep-guest-felt"))
    sections.push({
      title: "Guest-felt downtime in the sweep",
      text: [
        "Per checkpoint: QEMU STOP→RESUME + vpc-dirtier's write stalls over its baseline, one line per engine and hot fraction. Where the copy engines (stop-copy, precopy) rise with the dirty set and cow/vpc stay flat, COW beats copying; where vpc stays below cow, prediction beats COW.",
      ],
      chart: "sweep-guest-felt",
    });
  if (a.steps.length > 0)
    sections.push({
      title: "Where the pause goes, by step",
      text: [
        "Median ms of each step the engines recorded (`steps` of every checkpoint), over the figure checkpoints of each engine in this run. Steps are shown as the engines name them; they may nest or overlap (e.g. an agent call made of harvest, copy and protect, with device state saved alongside it), so a stacked bar can be taller than the pause (the tick). QEMU's engines name their own steps, which may run beyond the pause.",
      ],
      table: stepsTable(a.steps),
      ...(has("pause-steps") ? { chart: "pause-steps" } : {}),
    });
  const vc = byExp(a.groups, "vc-scale");
  if (vc.length > 0)
    sections.push({
      title: "VC downtime against VMs (experiment `vc-scale`)",
      text: ["VC downtime: first VM paused → last VM resumed, per committed global checkpoint."],
      table: vcTable(vc),
      ...(has("vc-downtime") ? { chart: "vc-downtime" } : {}),
    });
  if (a.vcSteps.length > 0)
    sections.push({
      title: "Where the VC downtime goes, by step (experiment `vc-scale`)",
      text: [
        "Per engine, over the committed incremental global checkpoints: the median of each step of every VM's pause (the engine's steps, plus the cut's: waiting for QEMU to read what the switch wrote to it before QMP stop, the stop, and draining what QEMU sent until it stopped), and the spread: how long after the first VM the last one began its pause. VC downtime is at least the spread plus one VM's pause.",
      ],
      table: vcStepsTable(a.vcSteps),
    });
  const interval = byExp(a.groups, "interval");
  if (interval.length > 0)
    sections.push({
      title: "Overhead against the checkpoint interval (experiment `interval`)",
      text: [],
      table: intervalTable(interval),
      ...(has("overhead-interval") ? { chart: "overhead-interval" } : {}),
    });
  if (has("memory-overhead"))
    sections.push({
      title: "Memory overhead",
      text: [
        "Peak bytes of checkpoint buffers (staging + COW copies; QEMU engines: the stream) ÷ guest RAM, per engine, over incremental checkpoints.",
      ],
      chart: "memory-overhead",
    });
  const pred = byExp(a.groups, "predictor");
  if (pred.length > 0)
    sections.push({
      title: "Predictor precision and recall (experiment `predictor`)",
      text: [
        "precision = |P∩W| / |P|, recall = |P∩W| / |W|, pooled over the checkpoints of each kernel and strategy.",
      ],
      table: predictorTable(pred),
      ...(has("predictor") ? { chart: "predictor" } : {}),
    });
  const rest = byExp(a.groups, "restore");
  if (rest.length > 0)
    sections.push({
      title: "Restore time (experiment `restore`)",
      text: [
        "Restore time: restore started → the VM running and reachable over SSH. After it, the NPB loop that was running at the checkpoint must complete a run in the restored VM with every result `Verification = SUCCESSFUL`.",
        "With several VMs it is a virtual-cluster restore: the whole cluster killed after the chain's last global epoch, then `Cluster.restore` timed from the call to every VM running and reachable again (host agents reconnected, channel logs queued for replay, each VM restored in parallel on its host); every VM's NPB loop (one rank per VM) must verify afterwards.",
      ],
      table: restoreTable(rest),
      ...(has("restore") ? { chart: "restore" } : {}),
    });
  sections.push({
    title: "Failed cells",
    text:
      a.failed.length === 0
        ? ["None."]
        : ["Recorded as failures, never dropped; `vpc eval --resume DIR` runs them again."],
    ...(a.failed.length === 0
      ? {}
      : {
          table: {
            header: ["cell", "code", "error"],
            rows: a.failed.map((f) => [f.id, f.code ?? DASH, f.error]),
          },
        }),
  });
  if (missing.length > 0)
    sections.push({
      title: "Cells not run",
      text: [
        `${missing.length} cell(s) of the configuration have no status (interrupted run): \`vpc eval --resume ${results.dir}\` runs them.`,
      ],
      table: { header: ["cell"], rows: missing.map((c) => [cellId(c)]) },
    });
  sections.push({ title: "Reproduce", text: ["From a clone of the repository:"], code: reproduce(results) });
  return { title: "VPC evaluation report", sections };
}

// ---- rendering --------------------------------------------------------------------------------

const mdCell = (s: string) => s.replace(/\|/g, "\\|").replace(/\n/g, " ");

export function toMarkdown(doc: ReportDocument, chartPath: (id: string) => string): string {
  const out: string[] = [`# ${doc.title}`, ""];
  for (const s of doc.sections) {
    out.push(`## ${s.title}`, "");
    for (const t of s.text) out.push(t, "");
    if (s.table) {
      out.push(`| ${s.table.header.map(mdCell).join(" | ")} |`);
      out.push(`|${s.table.header.map(() => " --- ").join("|")}|`);
      for (const row of s.table.rows) out.push(`| ${row.map(mdCell).join(" | ")} |`);
      out.push("");
    }
    if (s.chart) out.push(`![${s.title}](${chartPath(s.chart)})`, "");
    if (s.code) out.push("```sh", ...s.code, "```", "");
  }
  return out.join("\n");
}

const esc = (s: string) =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
/** The Markdown we emit in text: only `code` spans. */
const inline = (s: string) => esc(s).replace(/`([^`]+)`/g, "<code>$1</code>");

export function toHtml(doc: ReportDocument, charts: readonly Chart[]): string {
  const body: string[] = [`<h1>${esc(doc.title)}</h1>`];
  for (const s of doc.sections) {
    body.push(`<h2>${inline(s.title)}</h2>`);
    for (const t of s.text) body.push(`<p>${inline(t)}</p>`);
    if (s.table) {
      body.push(
        "<table>",
        `<thead><tr>${s.table.header.map((h) => `<th>${esc(h)}</th>`).join("")}</tr></thead>`,
        "<tbody>",
      );
      for (const row of s.table.rows) body.push(`<tr>${row.map((c) => `<td>${esc(c)}</td>`).join("")}</tr>`);
      body.push("</tbody>", "</table>");
    }
    const chart = s.chart ? charts.find((c) => c.id === s.chart) : undefined;
    if (chart)
      body.push(
        `<figure id="chart-${chart.id}">${chart.svg}<figcaption>${esc(chart.title)}</figcaption></figure>`,
      );
    if (s.code) body.push(`<pre><code>${esc(s.code.join("\n"))}</code></pre>`);
  }
  return [
    "<!DOCTYPE html>",
    '<html lang="en">',
    "<head>",
    '<meta charset="utf-8">',
    `<title>${esc(doc.title)}</title>`,
    "<style>",
    "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}",
    "table{border-collapse:collapse;margin:1em 0;font-size:90%}th,td{border:1px solid #ccc;padding:3px 8px;text-align:left}",
    "th{background:#f3f3f3}code,pre{background:#f6f6f6}pre{padding:.8em;overflow:auto}figure{margin:1em 0}",
    "</style>",
    "</head>",
    "<body>",
    ...body,
    "</body>",
    "</html>",
    "",
  ].join("\n");
}

export interface WrittenReport {
  readonly markdownPath: string;
  readonly htmlPath: string;
  readonly chartPaths: readonly string[];
  readonly analysis: Analysis;
  readonly document: ReportDocument;
  readonly charts: readonly Chart[];
}

/**
 * Reads and validates `dir`, rewrites its CSV summaries and writes `OUT/report.md`,
 * `OUT/report.html` and `OUT/charts/*.svg` (OUT defaults to `dir/report`).
 */
export async function writeReport(dir: string, outDir: string = join(dir, "report")): Promise<WrittenReport> {
  const results = await readResults(dir);
  await writeSummaries(results);
  const analysis = analyze(results);
  const charts = await renderCharts(analysis.groups, analysis.steps);
  const document = buildReport(results, analysis, charts);
  await mkdir(join(outDir, "charts"), { recursive: true });
  const chartPaths: string[] = [];
  for (const c of charts) {
    const p = join(outDir, "charts", `${c.id}.svg`);
    await writeFile(p, c.svg);
    chartPaths.push(p);
  }
  const markdownPath = join(outDir, "report.md");
  const htmlPath = join(outDir, "report.html");
  await writeFile(
    markdownPath,
    toMarkdown(document, (id) => `charts/${id}.svg`),
  );
  await writeFile(htmlPath, toHtml(document, charts));
  return { markdownPath, htmlPath, chartPaths, analysis, document, charts };
}
