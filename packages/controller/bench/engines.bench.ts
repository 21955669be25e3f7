// Benchmark: the pause floor and the agent engines side by side, on one real TCG guest.
//   npm run bench -w @vpc/controller -- bench/engines.bench.ts
// 1. floor: QMP stop+cont, and stop + device state (into memory) + cont — the floor of any pause;
// 2. every engine at near-zero dirty pages (the guest idles): its pause ÷ the floor;
// 3. every engine while vpc-memcheck rewrites pages all over a large region (tens of thousands
//    of pages per 1 s interval): pause, solo downtime, COW faults, per-step medians, per-page
//    copy and protect costs, prediction precision/recall, and the ratios the issue targets.
// Everything is measured in one run on the same VM. The loaded phase runs in rounds, the engines
// in a rotated order each round, so a change of machine load during the run falls on every engine
// alike; the ratios are taken per round and reported as their median and range.
// Environment: VPC_BENCH_ENGINES (default "stop-copy cow vpc precopy"), VPC_BENCH_CHECKPOINTS
// (incremental checkpoints per engine, phase and round, default 8), VPC_BENCH_ROUNDS (rounds of
// the loaded phase, default 3), VPC_BENCH_MEMCHECK (vpc-memcheck arguments of the loaded phase),
// VPC_BENCH_WORKLOAD (instead of vpc-memcheck: any guest shell command, run detached for the loaded
// phase, e.g. "while :; do /opt/npb/bin/mg W; done" or "vpc-dirtier -r 20000 -h 0.8"),
// VPC_BENCH_MEM_MIB (guest RAM, default 256), VPC_BENCH_MODE (async | sync), VPC_BENCH_RECORDS (a
// file to write every checkpoint's metrics to, one JSON line each with its phase and round).
import { appendFile, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TrackingMode } from "@vpc/dirty-log";
import { CheckpointStore } from "@vpc/storage";
import { expect, it } from "vitest";
import {
  type AgentVm,
  type CheckpointMetrics,
  createEngine,
  parseEngineSpec,
  startVmWithAgent,
} from "../src/engines/index.js";
import { shellQuote } from "../src/internal/shell.js";

const ENGINES = (process.env.VPC_BENCH_ENGINES ?? "stop-copy cow vpc precopy").split(/\s+/).filter(Boolean);
const CHECKPOINTS = Number(process.env.VPC_BENCH_CHECKPOINTS ?? 8);
const ROUNDS = Number(process.env.VPC_BENCH_ROUNDS ?? 3);
const MEMCHECK = process.env.VPC_BENCH_MEMCHECK ?? "-m 96 -w 2048 -s 1000 -v 2000";
const WORKLOAD = process.env.VPC_BENCH_WORKLOAD;
const MEM_MIB = Number(process.env.VPC_BENCH_MEM_MIB ?? 256);
const MODE = (process.env.VPC_BENCH_MODE ?? "async") as TrackingMode;
const RECORDS = process.env.VPC_BENCH_RECORDS;
const FLOOR_ROUNDS = 15;

function median(xs: readonly number[]): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const m = s.length / 2;
  return s.length % 2 ? s[Math.floor(m)]! : (s[m - 1]! + s[m]!) / 2;
}
const r2 = (x: number): number => Math.round(x * 100) / 100;

interface EngineRow {
  engine: string;
  checkpoints: number;
  pagesDirty: number;
  pauseMs: number;
  soloDowntimeMs: number;
  cowFaults: number;
  cowFaultsOnRead: number;
  pagesCopiedInPause: number;
  pagesProtected: number;
  copyNsPerPage: number;
  protectNsPerPage: number;
  saveMs: number;
  memoryOverhead: number;
  steps: Record<string, number>;
  precision: number | null;
  recall: number | null;
  /** vpc: how many pauses took each plan (adapt=1 chooses by cost), e.g. "predict 3, copy-all 5". */
  plans: string | null;
}

function summarize(engine: string, records: CheckpointMetrics[]): EngineRow {
  const inc = records.filter((r) => !r.full);
  const pick = (f: (r: CheckpointMetrics) => number | null | undefined): number =>
    r2(median(inc.map((r) => f(r) ?? Number.NaN)));
  const steps: Record<string, number> = {};
  for (const key of Object.keys(inc[0]?.steps ?? {})) steps[key] = pick((r) => r.steps[key]);
  const preds = inc.map((r) => r.prediction).filter((p) => p !== null);
  const hits = preds.reduce((a, p) => a + p.hits, 0);
  const predicted = preds.reduce((a, p) => a + p.predicted, 0);
  const written = preds.reduce((a, p) => a + p.written, 0);
  return {
    engine,
    checkpoints: inc.length,
    pagesDirty: pick((r) => r.pagesDirty),
    pauseMs: pick((r) => r.pauseMs),
    soloDowntimeMs: pick((r) => r.soloDowntimeMs),
    cowFaults: pick((r) => r.cowFaults),
    cowFaultsOnRead: pick((r) => r.cowFaultsOnRead),
    pagesCopiedInPause: pick((r) => r.pagesCopiedInPause),
    pagesProtected: pick((r) => r.pagesProtected),
    copyNsPerPage: pick((r) => r.copyNsPerPage),
    protectNsPerPage: pick((r) => r.protectNsPerPage),
    saveMs: pick((r) => r.saveMs),
    memoryOverhead: r2(median(inc.map((r) => r.memoryOverhead)) * 100) / 100,
    steps,
    precision: predicted > 0 ? r2(hits / predicted) : null,
    recall: written > 0 ? r2(hits / written) : null,
    plans: planCounts(inc),
  };
}

function planCounts(records: CheckpointMetrics[]): string | null {
  const counts = new Map<string, number>();
  for (const r of records) if (r.vpcPlan) counts.set(r.vpcPlan, (counts.get(r.vpcPlan) ?? 0) + 1);
  return counts.size ? [...counts].map(([plan, n]) => `${plan} ${n}`).join(", ") : null;
}

async function runEngine(
  live: AgentVm,
  work: string,
  spec: string,
  intervalMs: number,
  checkpoints: number,
  label: { phase: string; round: number },
): Promise<CheckpointMetrics[]> {
  const store = await CheckpointStore.open(await mkdtemp(join(work, "store-")), {
    create: true,
    fsync: false,
  });
  const engine = createEngine(parseEngineSpec(spec), { vm: live.vm, store, agent: live.agent });
  const records: CheckpointMetrics[] = [];
  try {
    for (let e = 0; e <= checkpoints; e++) {
      const t0 = performance.now();
      records.push(await engine.checkpoint(e));
      const left = intervalMs - (performance.now() - t0);
      if (left > 0) await new Promise((r) => setTimeout(r, left));
    }
  } finally {
    await engine.close();
  }
  if (RECORDS)
    await appendFile(RECORDS, records.map((r) => `${JSON.stringify({ ...label, ...r })}\n`).join(""));
  return records;
}

it("pause floor and agent engines side by side", async () => {
  const work = await mkdtemp(join(tmpdir(), "vpc-bench-engines-"));
  let live: AgentVm | undefined;
  try {
    live = await startVmWithAgent({ name: "bench-engines", memMiB: MEM_MIB }, { mode: MODE });
    const { vm } = live;
    await vm.prepareDeviceState();

    const stopCont: number[] = [];
    const floor: number[] = [];
    for (let i = 0; i < FLOOR_ROUNDS; i++) {
      let t0 = performance.now();
      await vm.pause();
      await vm.resume();
      stopCont.push(performance.now() - t0);
      await new Promise((r) => setTimeout(r, 50));
      t0 = performance.now();
      await vm.pause();
      await vm.captureDeviceState();
      await vm.resume();
      floor.push(performance.now() - t0);
      await new Promise((r) => setTimeout(r, 50));
    }
    const floorMs = r2(median(floor));

    const idle: EngineRow[] = [];
    for (const spec of ENGINES)
      idle.push(
        summarize(spec, await runEngine(live, work, spec, 300, CHECKPOINTS, { phase: "idle", round: 0 })),
      );

    // The loaded phase: our self-checking writer, or any program the user names.
    const start = WORKLOAD
      ? `sh -c ${shellQuote(WORKLOAD)} >/dev/null 2>/run/workload.err </dev/null &`
      : `vpc-memcheck ${MEMCHECK} >/dev/null 2>/run/memcheck.err </dev/null &`;
    await vm.run(start);
    await new Promise((r) => setTimeout(r, 2000));
    const loadedRecords = new Map<string, CheckpointMetrics[]>(ENGINES.map((spec) => [spec, []]));
    const rounds: { order: string[]; soloDowntimeMs: Record<string, number>; plans: string | null }[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const order = ENGINES.map((_, i) => ENGINES[(i + round) % ENGINES.length]!);
      const soloDowntimeMs: Record<string, number> = {};
      let plans: string | null = null;
      for (const spec of order) {
        const records = await runEngine(live, work, spec, 1000, CHECKPOINTS, { phase: "loaded", round });
        loadedRecords.get(spec)!.push(...records);
        const row = summarize(spec, records);
        soloDowntimeMs[spec] = row.soloDowntimeMs;
        if (row.plans) plans = row.plans;
      }
      rounds.push({ order, soloDowntimeMs, plans });
      console.log(JSON.stringify({ round, ...rounds[round] }));
    }
    const loaded = ENGINES.map((spec) => summarize(spec, loadedRecords.get(spec)!));
    const memcheck = WORKLOAD
      ? await vm.run("cat /run/workload.err")
      : await vm.run("cat /run/vpc-memcheck || cat /run/memcheck.err");

    /** An engine spec's name without its strategy and parameters ("vpc(last):adapt=0" → "vpc"). */
    const nameOf = (spec: string): string => spec.split(/[(:]/)[0]!;
    const byName = (rows: EngineRow[], name: string): EngineRow | undefined =>
      rows.find((r) => nameOf(r.engine) === name);
    const ratio = (a: number | undefined, b: number | undefined): number | null =>
      a !== undefined && b !== undefined && b > 0 ? r2(a / b) : null;
    /** Per-round ratios of two engines' solo downtime: their median, min and max. */
    const roundRatio = (a: string, b: string) => {
      const specOf = (name: string) => ENGINES.find((e) => nameOf(e) === name);
      const sa = specOf(a);
      const sb = specOf(b);
      if (!sa || !sb) return null;
      const per = rounds.map((r) => ratio(r.soloDowntimeMs[sa], r.soloDowntimeMs[sb]) ?? Number.NaN);
      return { median: r2(median(per)), min: Math.min(...per), max: Math.max(...per), perRound: per };
    };
    const report = {
      date: new Date().toISOString(),
      guestMiB: MEM_MIB,
      mode: MODE,
      workload: WORKLOAD ?? `vpc-memcheck ${MEMCHECK}`,
      workloadStatus: memcheck.trim(),
      floor: { stopContMs: r2(median(stopCont)), floorMs, rounds: FLOOR_ROUNDS },
      idle: idle.map((r) => ({ ...r, pauseOverFloor: ratio(r.pauseMs, floorMs) })),
      loaded,
      rounds,
      ratios: {
        vpcOverStopCopySolo: roundRatio("vpc", "stop-copy"),
        vpcOverCowSolo: roundRatio("vpc", "cow"),
        stopCopyIdlePauseOverFloor: ratio(byName(idle, "stop-copy")?.pauseMs, floorMs),
        vpcIdlePauseOverFloor: ratio(byName(idle, "vpc")?.pauseMs, floorMs),
      },
      load: (await import("node:os")).loadavg().map(r2),
    };
    console.log(JSON.stringify(report, null, 2));
    if (!WORKLOAD) expect(memcheck).toMatch(/failures=0 /);
  } finally {
    await live?.close();
    await rm(work, { recursive: true, force: true });
  }
});
