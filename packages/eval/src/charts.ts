/**
 * The report's charts: Vega-Lite specs built from the analysis, compiled to Vega and rendered to
 * SVG in Node (vega's `View#toSVG` needs no canvas or browser). A chart with no data is not drawn.
 */
import { parse as parseVega, View } from "vega";
import { compile, type TopLevelSpec } from "vega-lite";
import type { GroupRow } from "./analyze.js";
import { EvaluationError } from "./errors.js";
import { NO_CHECKPOINT } from "./format.js";

export interface ChartSpec {
  /** File-name-safe id, e.g. `solo-downtime`. */
  readonly id: string;
  readonly title: string;
  /** The series names the chart draws (engines, strategies, …), for readers and tests. */
  readonly series: readonly string[];
  readonly spec: TopLevelSpec;
}

export interface Chart extends ChartSpec {
  readonly svg: string;
}

const kernelOf = (r: GroupRow) => `${r.kernel.toUpperCase()}.${r.cls}`;
const uniq = (xs: readonly string[]) => [...new Set(xs)];
const WIDTH = 560;
const HEIGHT = 260;

function soloDowntime(rows: readonly GroupRow[]): ChartSpec | null {
  const data = rows
    .filter((r) => r.experiment === "solo" && r.engine !== NO_CHECKPOINT && r.soloDowntimeMedianMs !== null)
    .map((r) => ({
      kernel: kernelOf(r),
      engine: r.engine,
      median: r.soloDowntimeMedianMs,
      p95: r.soloDowntimeP95Ms,
    }));
  if (data.length === 0) return null;
  const x = { field: "kernel", type: "nominal", title: "NPB kernel" } as const;
  const xOffset = { field: "engine", type: "nominal" } as const;
  return {
    id: "solo-downtime",
    title: "Solo VM downtime per engine (bar: median, tick: p95)",
    series: uniq(data.map((d) => d.engine)),
    spec: {
      width: WIDTH,
      height: HEIGHT,
      title: "Solo VM downtime per engine (bar: median, tick: p95)",
      data: { values: data },
      layer: [
        {
          mark: "bar",
          encoding: {
            x,
            xOffset,
            // symlog: qemu-stop's ~1 s pauses would otherwise flatten the ~10 ms engines to nothing
            y: {
              field: "median",
              type: "quantitative",
              title: "solo VM downtime (ms, symlog scale)",
              scale: { type: "symlog" },
              axis: { values: [0, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000] },
            },
            color: { field: "engine", type: "nominal", title: "engine" },
          },
        },
        {
          mark: { type: "tick", color: "black", thickness: 2 },
          encoding: { x, xOffset, y: { field: "p95", type: "quantitative", scale: { type: "symlog" } } },
        },
      ],
    },
  };
}

function lineChart(
  id: string,
  title: string,
  data: readonly Record<string, unknown>[],
  x: { field: string; title: string; scale?: "log"; ticks?: readonly number[] },
  y: { field: string; title: string; format?: string },
  series: string,
  seriesTitle: string,
): ChartSpec | null {
  if (data.length === 0) return null;
  return {
    id,
    title,
    series: uniq(data.map((d) => String(d[series]))),
    spec: {
      width: WIDTH,
      height: HEIGHT,
      title,
      data: { values: [...data] },
      mark: { type: "line", point: true },
      encoding: {
        x: {
          field: x.field,
          type: "quantitative",
          title: x.title,
          ...(x.scale ? { scale: { type: x.scale } } : {}),
          // Counts (VMs) get ticks at the measured values only, not 1.2, 1.4, …
          ...(x.ticks ? { axis: { values: [...x.ticks], format: "d" } } : {}),
        },
        y: {
          field: y.field,
          type: "quantitative",
          title: y.title,
          ...(y.format ? { axis: { format: y.format } } : {}),
        },
        // Vega cuts legend labels at 160 px; "vpc, chain 4, 2 VMs on 2 hosts" is longer.
        color: { field: series, type: "nominal", title: seriesTitle, legend: { labelLimit: 280 } },
      },
    },
  };
}

function vcDowntime(rows: readonly GroupRow[]): ChartSpec | null {
  const vc = rows.filter((r) => r.experiment === "vc-scale" && r.vcDowntimeMedianMs !== null);
  // One line per engine and kernel; split by host count only where the same VM count was run on
  // several (the quick preset puts 1 VM on 1 host and 2, 4 VMs on 2 hosts: one line each).
  const point = (r: GroupRow) => `${r.engine} ${kernelOf(r)} ${r.vms}`;
  const hostsVary = vc.some((r) => vc.some((o) => point(o) === point(r) && o.hosts !== r.hosts));
  const data = vc.map((r) => ({
    series: `${r.engine} ${kernelOf(r)}${hostsVary ? ` ${r.hosts} host${r.hosts > 1 ? "s" : ""}` : ""}`,
    vms: r.vms,
    ms: r.vcDowntimeMedianMs,
  }));
  return lineChart(
    "vc-downtime",
    "VC downtime (median) against the number of VMs",
    data,
    { field: "vms", title: "VMs", ticks: [...new Set(data.map((d) => d.vms))].sort((a, b) => a - b) },
    { field: "ms", title: "VC downtime (ms)" },
    "series",
    "engine",
  );
}

function overheadInterval(rows: readonly GroupRow[]): ChartSpec | null {
  const data = rows
    .filter((r) => r.experiment === "interval" && r.engine !== NO_CHECKPOINT && r.runtimeOverhead !== null)
    .map((r) => ({
      series: `${r.engine} ${kernelOf(r)}`,
      intervalS: r.intervalMs / 1000,
      overhead: r.runtimeOverhead,
    }));
  return lineChart(
    "overhead-interval",
    "Run-time overhead against the checkpoint interval",
    data,
    { field: "intervalS", title: "interval (s)", scale: "log" },
    { field: "overhead", title: "run-time overhead", format: "%" },
    "series",
    "engine",
  );
}

function memoryOverhead(rows: readonly GroupRow[]): ChartSpec | null {
  const data = rows
    .filter((r) => (r.experiment === "solo" || r.experiment === "interval") && r.memoryOverheadMax !== null)
    .map((r) => ({
      kernel: `${kernelOf(r)}${r.experiment === "interval" ? ` @${r.intervalMs / 1000}s` : ""}`,
      engine: r.engine,
      value: r.memoryOverheadMax,
    }));
  if (data.length === 0) return null;
  return {
    id: "memory-overhead",
    title: "Peak memory overhead (checkpoint buffers ÷ guest RAM)",
    series: uniq(data.map((d) => d.engine)),
    spec: {
      width: WIDTH,
      height: HEIGHT,
      title: "Peak memory overhead (checkpoint buffers ÷ guest RAM)",
      data: { values: data },
      mark: "bar",
      encoding: {
        x: { field: "kernel", type: "nominal", title: "NPB kernel" },
        xOffset: { field: "engine", type: "nominal" },
        y: { field: "value", type: "quantitative", title: "memory overhead", axis: { format: "%" } },
        color: { field: "engine", type: "nominal", title: "engine" },
      },
    },
  };
}

function predictor(rows: readonly GroupRow[]): ChartSpec | null {
  const data = rows
    .filter((r) => r.experiment === "predictor")
    .flatMap((r) => [
      { label: `${kernelOf(r)} ${r.engine}`, measure: "precision", value: r.precision },
      { label: `${kernelOf(r)} ${r.engine}`, measure: "recall", value: r.recall },
    ])
    .filter((d) => d.value !== null);
  if (data.length === 0) return null;
  return {
    id: "predictor",
    title: "Prediction precision and recall per strategy",
    series: uniq(data.map((d) => d.label)),
    spec: {
      width: WIDTH,
      height: HEIGHT,
      title: "Prediction precision and recall per strategy",
      data: { values: data },
      mark: "bar",
      encoding: {
        x: { field: "label", type: "nominal", title: "kernel and strategy", axis: { labelAngle: -30 } },
        xOffset: { field: "measure", type: "nominal" },
        y: { field: "value", type: "quantitative", title: "fraction", scale: { domain: [0, 1] } },
        color: { field: "measure", type: "nominal", title: "measure" },
      },
    },
  };
}

function restore(rows: readonly GroupRow[]): ChartSpec | null {
  const data = rows
    .filter((r) => r.experiment === "restore" && r.restoreMedianMs !== null)
    .map((r) => ({
      // A VC restore (several VMs) is its own line; one-VM restores keep the short label.
      series: `${r.engine}, chain ${r.chainLength ?? "?"}${r.vms > 1 ? `, ${r.vms} VMs on ${r.hosts} ${r.hosts === 1 ? "host" : "hosts"}` : ""}`,
      memMiB: r.memMiB,
      ms: r.restoreMedianMs,
    }));
  return lineChart(
    "restore",
    "Restore time against guest RAM and epoch-chain length",
    data,
    { field: "memMiB", title: "guest RAM (MiB)" },
    { field: "ms", title: "restore time (ms)" },
    "series",
    "engine, chain, VMs",
  );
}

/** The chart specs the data supports, in report order. */
export function chartSpecs(rows: readonly GroupRow[]): ChartSpec[] {
  return [
    soloDowntime(rows),
    vcDowntime(rows),
    overheadInterval(rows),
    memoryOverhead(rows),
    predictor(rows),
    restore(rows),
  ].filter((c): c is ChartSpec => c !== null);
}

export async function renderSvg(chart: ChartSpec): Promise<Chart> {
  let view: View | undefined;
  try {
    const vg = compile({ ...chart.spec, config: { font: "sans-serif" } } as TopLevelSpec).spec;
    view = new View(parseVega(vg), { renderer: "none" });
    return { ...chart, svg: await view.toSVG() };
  } catch (e) {
    throw new EvaluationError("RENDER", `chart ${chart.id}: ${e instanceof Error ? e.message : String(e)}`, {
      chart: chart.id,
      cause: e,
    });
  } finally {
    view?.finalize();
  }
}

export async function renderCharts(rows: readonly GroupRow[]): Promise<Chart[]> {
  const out: Chart[] = [];
  for (const c of chartSpecs(rows)) out.push(await renderSvg(c));
  return out;
}
