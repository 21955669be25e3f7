/**
 * The report's charts: Vega-Lite specs built from the analysis, compiled to Vega and rendered to
 * SVG in Node (vega's `View#toSVG` needs no canvas or browser). A chart with no data is not drawn.
 */
import { distribution } from "@vpc/controller";
import { parse as parseVega, View } from "vega";
import { compile, type TopLevelSpec } from "vega-lite";
import { type EngineSteps, type GroupRow, pauseOnly } from "./analyze.js";
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
/** The engine as a downtime chart names it: qemu-snapshot's figure is its pause only. */
export const downtimeSeries = (engine: string) => (pauseOnly(engine) ? `${engine} (pause only)` : engine);
const uniq = (xs: readonly string[]) => [...new Set(xs)];
const WIDTH = 560;
const HEIGHT = 260;

function soloDowntime(rows: readonly GroupRow[]): ChartSpec | null {
  const data = rows
    .filter((r) => r.experiment === "solo" && r.engine !== NO_CHECKPOINT && r.soloDowntimeMedianMs !== null)
    .map((r) => ({
      kernel: kernelOf(r),
      engine: downtimeSeries(r.engine),
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
            color: { field: "engine", type: "nominal", title: "engine", legend: { labelLimit: 280 } },
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

/**
 * The sweep's x axis: the dirty pages per interval the agent engines harvested at each point
 * (median over them); QEMU's engines save all of RAM, so their own count says nothing of the
 * workload and they are drawn at the point's x.
 */
function sweepDirtyPages(rows: readonly GroupRow[]): (r: GroupRow) => number | null {
  const point = (r: GroupRow) => JSON.stringify([r.dirtyRate, r.hotFraction, r.memMiB, r.intervalMs]);
  const byPoint = new Map<string, number[]>();
  for (const r of rows)
    if (r.experiment === "sweep" && !r.engine.startsWith("qemu-") && r.pagesDirtyMedian !== null) {
      const list = byPoint.get(point(r)) ?? [];
      list.push(r.pagesDirtyMedian);
      byPoint.set(point(r), list);
    }
  return (r) => distribution(byPoint.get(point(r)) ?? []).median;
}

/** One line per engine and hot fraction against the dirty pages per interval (log x, symlog y). */
function sweepChart(
  rows: readonly GroupRow[],
  id: string,
  title: string,
  yTitle: string,
  y: (r: GroupRow) => number | null,
  series: (engine: string) => string,
): ChartSpec | null {
  const x = sweepDirtyPages(rows);
  const data = rows
    .filter((r) => r.experiment === "sweep")
    .flatMap((r) => {
      const pages = x(r);
      const value = y(r);
      return pages === null || value === null
        ? []
        : [{ engine: series(r.engine), hot: `h ${r.hotFraction}`, pages, value }];
    });
  if (data.length === 0) return null;
  return {
    id,
    title,
    series: uniq(data.map((d) => d.engine)),
    spec: {
      width: WIDTH,
      height: HEIGHT,
      title,
      data: { values: data },
      mark: { type: "line", point: true },
      encoding: {
        x: {
          field: "pages",
          type: "quantitative",
          title: "dirty pages per interval (median)",
          scale: { type: "log" },
        },
        y: {
          field: "value",
          type: "quantitative",
          title: yTitle,
          scale: { type: "symlog" },
          axis: { values: [0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000] },
        },
        color: { field: "engine", type: "nominal", title: "engine", legend: { labelLimit: 280 } },
        // Dashes tell the hot fractions apart on the lines, point shapes in the legend.
        strokeDash: { field: "hot", type: "nominal", title: "hot fraction" },
        shape: { field: "hot", type: "nominal", title: "hot fraction" },
        order: { field: "pages", type: "quantitative" },
      },
    },
  };
}

function sweepDowntime(rows: readonly GroupRow[]): ChartSpec | null {
  return sweepChart(
    rows,
    "sweep-downtime",
    "Solo VM downtime (median) against dirty pages per interval",
    "solo VM downtime (ms, symlog)",
    (r) => r.soloDowntimeMedianMs,
    downtimeSeries,
  );
}

function sweepGuestFelt(rows: readonly GroupRow[]): ChartSpec | null {
  return sweepChart(
    rows,
    "sweep-guest-felt",
    "Guest-felt downtime per checkpoint against dirty pages per interval",
    "QEMU stopped + guest write stalls (ms, symlog)",
    (r) => r.guest?.downtimeMs ?? null,
    (engine) => engine,
  );
}

/**
 * The pause of each engine by step: a stacked bar of the steps' medians (as the engine recorded
 * them) and a tick at the median pause, one panel per engine with its own scale (QEMU's steps
 * can be seconds where the agent engines' are milliseconds).
 */
function pauseSteps(steps: readonly EngineSteps[]): ChartSpec | null {
  const data = steps.flatMap((e) => [
    ...Object.entries(e.stepsMedianMs).map(([step, ms], order) => ({
      engine: e.engine,
      kind: "step",
      step,
      order,
      ms,
    })),
    ...(e.pauseMedianMs === null
      ? []
      : [{ engine: e.engine, kind: "pause", step: "pause", order: -1, ms: e.pauseMedianMs }]),
  ]);
  if (!data.some((d) => d.kind === "step")) return null;
  const stepNames = uniq(data.filter((d) => d.kind === "step").map((d) => d.step));
  return {
    id: "pause-steps",
    title: "Pause by step per engine (bars: median per step; tick: median pause)",
    series: [...uniq(steps.map((e) => e.engine)), ...stepNames],
    spec: {
      title: "Pause by step per engine (bars: median per step; tick: median pause)",
      data: { values: data },
      facet: {
        column: { field: "engine", type: "nominal", title: "engine", sort: uniq(steps.map((e) => e.engine)) },
      },
      resolve: { scale: { y: "independent" } },
      spec: {
        width: 70,
        height: HEIGHT,
        layer: [
          {
            transform: [{ filter: "datum.kind === 'step'" }],
            mark: "bar",
            encoding: {
              x: { field: "engine", type: "nominal", axis: null },
              y: { field: "ms", type: "quantitative", title: "ms", stack: "zero" },
              color: { field: "step", type: "nominal", title: "step", sort: stepNames },
              order: { field: "order", type: "quantitative" },
            },
          },
          {
            transform: [{ filter: "datum.kind === 'pause'" }],
            mark: { type: "tick", color: "black", thickness: 2 },
            encoding: {
              x: { field: "engine", type: "nominal", axis: null },
              y: { field: "ms", type: "quantitative" },
            },
          },
        ],
      },
    },
  };
}

/** The chart specs the data supports, in report order. */
export function chartSpecs(rows: readonly GroupRow[], steps: readonly EngineSteps[] = []): ChartSpec[] {
  return [
    soloDowntime(rows),
    sweepDowntime(rows),
    sweepGuestFelt(rows),
    pauseSteps(steps),
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

export async function renderCharts(
  rows: readonly GroupRow[],
  steps: readonly EngineSteps[] = [],
): Promise<Chart[]> {
  const out: Chart[] = [];
  for (const c of chartSpecs(rows, steps)) out.push(await renderSvg(c));
  return out;
}
