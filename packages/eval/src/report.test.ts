import { cp, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { XMLParser, XMLValidator } from "fast-xml-parser";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { analyze, groupRows, vcPauseSteps } from "./analyze.js";
import { chartSpecs } from "./charts.js";
import { runReportCli } from "./cli.js";
import { EvaluationError } from "./errors.js";
import {
  type CheckpointRecord,
  type GuestStallRecord,
  parseRecordLine,
  type VcCheckpointRecord,
} from "./format.js";
import { writeReport } from "./report.js";
import { parseRecords, readResults } from "./results-dir.js";

// Hand-written test data (see fixtures/README.md): its numbers are never measurements.
const FIXTURE = fileURLToPath(new URL("./fixtures/results-small", import.meta.url));

let dir: string;
let results: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "vpc-eval-report-"));
  results = join(dir, "results");
  await cp(FIXTURE, results, { recursive: true });
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Every text node of a parsed SVG, in document order. */
function svgTexts(svg: string): string[] {
  const out: string[] = [];
  const walk = (node: unknown): void => {
    if (typeof node === "string" || typeof node === "number") out.push(String(node));
    else if (Array.isArray(node)) node.forEach(walk);
    else if (node && typeof node === "object")
      for (const [k, v] of Object.entries(node)) if (!k.startsWith("@_")) walk(v);
  };
  walk(new XMLParser({ ignoreAttributes: false }).parse(svg));
  return out;
}

/** The rows of the Markdown table under `## title`. */
function mdTable(md: string, title: string): string[][] {
  const section = md.split(/^## /m).find((s) => s.startsWith(title));
  if (!section) throw new Error(`no section ${title}`);
  return section
    .split("\n")
    .filter((l) => l.startsWith("| ") && !l.startsWith("| ---"))
    .slice(1)
    .map((l) => l.slice(2, -2).split(" | "));
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};

describe("vpc report on the recorded fixture", () => {
  it("--json prints the written paths and every claim", async () => {
    const out: string[] = [];
    expect(
      await runReportCli([results, "--json", "--out", join(results, "report-json")], {
        stdout: (t) => out.push(t),
        stderr: (t) => out.push(t),
      }),
    ).toBe(0);
    const r = JSON.parse(out.join(""));
    expect(r.markdownPath).toBe(join(results, "report-json", "report.md"));
    expect(r.chartPaths.length).toBeGreaterThan(0);
    expect(r.claims.length).toBeGreaterThan(0);
    for (const c of r.claims) expect(typeof c.status).toBe("string");
  });

  it("writes Markdown, HTML and one valid SVG per chart, each naming its series", async () => {
    const lines: string[] = [];
    const code = await runReportCli([results], {
      stdout: (t) => lines.push(t),
      stderr: (t) => lines.push(t),
    });
    expect(code).toBe(0);
    const charts = await readdir(join(results, "report", "charts"));
    expect(charts.sort()).toEqual(
      [
        "memory-overhead",
        "overhead-interval",
        "pause-steps",
        "predictor",
        "restore",
        "solo-downtime",
        "sweep-downtime",
        "sweep-guest-felt",
        "vc-downtime",
      ].map((c) => `${c}.svg`),
    );
    const series: Record<string, string[]> = {
      "solo-downtime": ["stop-copy", "cow", "vpc", "qemu-snapshot (pause only)"],
      "sweep-downtime": ["cow", "vpc", "qemu-snapshot (pause only)", "h 0.2"],
      "sweep-guest-felt": ["cow", "vpc", "qemu-snapshot"],
      "pause-steps": [
        "cow",
        "vpc",
        "qemu-snapshot",
        "stopMs",
        "agentMs",
        "deviceStateMs",
        "contMs",
        "copyMs",
      ],
      "vc-downtime": ["vpc CG.S", "precopy CG.S"],
      "overhead-interval": ["vpc CG.S"],
      "memory-overhead": ["stop-copy", "cow", "vpc"],
      predictor: ["precision", "recall", "CG.S vpc(last)", "CG.S vpc(recency)"],
      restore: ["vpc, chain 1", "vpc, chain 4"],
    };
    for (const [id, names] of Object.entries(series)) {
      const svg = await readFile(join(results, "report", "charts", `${id}.svg`), "utf8");
      expect(XMLValidator.validate(svg), id).toBe(true);
      expect(svg.startsWith("<svg")).toBe(true);
      const texts = svgTexts(svg);
      for (const n of names) expect(texts, `${id} has series ${n}`).toContain(n);
    }
    const html = await readFile(join(results, "report", "report.html"), "utf8");
    expect(html.match(/<svg /g)).toHaveLength(9);
    expect(html).not.toMatch(/<img|<script|https?:\/\/(?!www\.w3\.org)/);
    const md = await readFile(join(results, "report", "report.md"), "utf8");
    expect(md).toContain("![Solo VM downtime (experiment `solo`)](charts/solo-downtime.svg)");
    expect(md.trimEnd().endsWith("```")).toBe(true);
    expect(md).toContain(`npx vpc report ${results}`);
  });

  it("puts the medians of the raw records in the solo table", async () => {
    const r = await writeReport(results);
    const md = await readFile(r.markdownPath, "utf8");
    const rows = mdTable(md, "Solo VM downtime");
    const data = await readResults(results);
    for (const cell of data.cells.filter(
      (c) => c.status.cell.experiment === "solo" && c.status.cell.engine !== "none",
    )) {
      const engine = cell.status.cell.engine;
      const inc = cell.records.flatMap((x) =>
        x.type === "checkpoint" && (!x.full || engine.startsWith("qemu-")) ? [x.soloDowntimeMs] : [],
      );
      const row = rows.find(
        (x) => x[1] === (engine === "qemu-snapshot" ? "qemu-snapshot (pause only)" : engine),
      );
      expect(row, engine).toBeDefined();
      expect(row?.[2]).toBe(String(inc.length));
      expect(row?.[3]).toBe(median(inc).toFixed(2));
    }
  });

  it("puts each sweep cell's guest-felt downtime in the sweep table, from its raw windows", async () => {
    const r = await writeReport(results);
    const rows = mdTable(await readFile(r.markdownPath, "utf8"), "Dirty-rate sweep");
    const data = await readResults(results);
    const sweepCells = data.cells.filter((c) => c.status.cell.experiment === "sweep");
    expect(rows).toHaveLength(sweepCells.length);
    for (const cell of sweepCells) {
      const { dirtyRate, hotFraction, engine } = cell.status.cell;
      const windows = cell.records.filter((x): x is GuestStallRecord => x.type === "guest-stall");
      const base = windows.find((w) => w.phase === "baseline")!;
      const cp = windows.find((w) => w.phase === "checkpointing")!;
      const baseline = (base.writeGapMs * cp.guestWindowMs) / base.guestWindowMs / cp.checkpoints;
      const felt = cp.stoppedMs / cp.checkpoints + cp.writeGapMs / cp.checkpoints - baseline;
      const label = engine === "qemu-snapshot" ? "qemu-snapshot (pause only)" : engine;
      const row = rows.find(
        (x) => x[0] === String(dirtyRate) && x[1] === String(hotFraction) && x[2] === label,
      );
      expect(row, cell.id).toBeDefined();
      // stopped, raw write stalls, baseline, guest-felt downtime
      expect(row?.slice(8, 12)).toEqual(
        [cp.stoppedMs / cp.checkpoints, cp.writeGapMs / cp.checkpoints, baseline, felt].map((x) =>
          x.toFixed(2),
        ),
      );
    }
  });

  it("draws the sweep against the dirty pages the agent engines harvested, QEMU's engines at the same x", async () => {
    const rows = groupRows(await readResults(results));
    const spec = chartSpecs(rows).find((c) => c.id === "sweep-downtime")?.spec as {
      data: { values: { engine: string; pages: number }[] };
    };
    // Point 1: cow 900, vpc 1100 pages → 1000; point 2: cow 16000, vpc 16200 → 16100.
    expect(spec.data.values.map((d) => [d.engine, d.pages])).toEqual([
      ["cow", 1000],
      ["qemu-snapshot (pause only)", 1000],
      ["vpc", 1000],
      ["cow", 16100],
      ["qemu-snapshot (pause only)", 16100],
      ["vpc", 16100],
    ]);
  });

  it("gives the median of every recorded pause step per engine, steps in first-seen order", async () => {
    const r = await writeReport(results);
    const md = await readFile(r.markdownPath, "utf8");
    const section = md.split(/^## /m).find((s) => s.startsWith("Where the pause goes"))!;
    const header = section.split("\n").find((l) => l.startsWith("| engine"));
    expect(header).toBe(
      "| engine | checkpoints | pause median ms | stopMs (median) | agentMs (median) | deviceStateMs (median) | contMs (median) | copyMs (median) |",
    );
    const rows = mdTable(md, "Where the pause goes");
    expect(rows.map((x) => x[0])).toEqual(["cow", "vpc", "qemu-snapshot (pause only)"]);
    const data = await readResults(results);
    for (const engine of ["cow", "vpc"]) {
      const cps = data.cells
        .filter((c) => c.status.cell.engine === engine && c.status.state === "done")
        .flatMap((c) => c.records.filter((x): x is CheckpointRecord => x.type === "checkpoint" && !x.full));
      const withSteps = cps.filter((x) => x.steps !== null);
      const row = rows.find((x) => x[0] === engine);
      expect(row?.[1], engine).toBe(String(withSteps.length));
      expect(row?.slice(3, 7)).toEqual(
        ["stopMs", "agentMs", "deviceStateMs", "contMs"].map((k) =>
          median(withSteps.map((x) => x.steps?.[k] as number)).toFixed(2),
        ),
      );
      expect(row?.[7]).toBe("–");
    }
    expect(analyze(data).steps.find((e) => e.engine === "qemu-snapshot")?.stepsMedianMs).toEqual({
      stopMs: 0,
      copyMs: 900,
    });
  });

  it("draws one VC line per engine, split by host count only where a VM count ran on several", async () => {
    const rows = groupRows(await readResults(results));
    const vcSeries = (rs: typeof rows) => chartSpecs(rs).find((c) => c.id === "vc-downtime")?.series;
    expect(vcSeries(rows)).toEqual(expect.arrayContaining(["vpc CG.S", "precopy CG.S"]));
    const vpc1 = rows.find((r) => r.experiment === "vc-scale" && r.engine === "vpc")!;
    const twoHosts = [...rows, { ...vpc1, hosts: 2 }];
    expect(vcSeries(twoHosts)).toEqual(expect.arrayContaining(["vpc CG.S 1 host", "vpc CG.S 2 hosts"]));
  });

  it("draws a VC restore as its own restore line, one-VM restores keep the short label", async () => {
    const rows = groupRows(await readResults(results));
    const one = rows.find((r) => r.experiment === "restore" && r.chainLength === 4)!;
    const series = chartSpecs([...rows, { ...one, vms: 2, hosts: 2 }]).find(
      (c) => c.id === "restore",
    )?.series;
    expect(series).toEqual(expect.arrayContaining(["vpc, chain 4", "vpc, chain 4, 2 VMs on 2 hosts"]));
  });

  it("gives the restore times and whether NPB verified after each restore", async () => {
    const r = await writeReport(results);
    const rows = mdTable(await readFile(r.markdownPath, "utf8"), "Restore time");
    // engine, RAM, chain, VMs, hosts, restores, verified, median, p95, failed
    expect(rows.map((x) => [x[2], x[3], x[4], x[6], x[7]])).toEqual([
      ["1", "1", "1", "not checked", "1200.00"],
      ["4", "1", "1", "1 of 1", "1500.00"],
    ]);
  });

  it("states each target met, not met or not measured from the measured ratio", async () => {
    const r = await writeReport(results);
    const md = await readFile(r.markdownPath, "utf8");
    const claims = mdTable(md, "Paper claims and our targets");
    const find = (claim: string) => claims.find((c) => c[1] === claim);
    // vpc 2.0 ms ÷ stop-copy 8.0 ms and ÷ cow 3.0 ms (medians of the fixture's incremental checkpoints)
    expect(find("solo VM downtime ≤ 0.30 × stop-copy")?.slice(4, 6)).toEqual(["0.250", "met"]);
    expect(find("solo VM downtime ≤ 0.60 × cow")?.slice(4, 6)).toEqual(["0.667", "not met"]);
    // VC: vpc 4 ms ÷ precopy 9 ms at 1 VM; the 2-VM precopy cell failed, so only 1 VM is compared
    expect(find("VC downtime ≤ 0.40 × precopy")?.slice(4, 7)).toEqual([
      "0.444",
      "not met",
      "CG.S 1 VM/1 host 0.444",
    ]);
    expect(find("run-time overhead < 8% at a 1 s interval")?.[5]).toBe("met");
    // qemu-snapshot: its pause is labelled as such; the sweep compares guest-felt downtime alike:
    // vpc (4.5 + 2 − 1) ÷ qemu-snapshot (12 + 301 − 1), and (35 + 7 − 2) ÷ (13 + 802 − 2).
    expect(find("solo VM downtime ≤ 0.25 × qemu-snapshot's pause")?.[2]).toContain("pause only");
    expect(find("guest-felt downtime ≤ 0.25 × qemu-snapshot's (sweep)")?.slice(4, 7)).toEqual([
      "0.049",
      "met",
      "1000 pages/s, h 0.2 0.018, 20000 pages/s, h 0.2 0.049",
    ]);
    const csv = await readFile(join(results, "summary", "claims.csv"), "utf8");
    expect(csv.split("\r\n").filter(Boolean)).toHaveLength(1 + claims.length);
  });

  it("says not measured when the cells behind a claim are absent", async () => {
    for (const f of await readdir(join(results, "cells"))) {
      if (f.startsWith("vc-scale.")) await rm(join(results, "cells", f));
    }
    const r = await writeReport(results);
    const vc = r.analysis.claims.filter((c) => c.measure.includes("VC downtime"));
    expect(vc.map((c) => c.status)).toEqual(["not measured", "not measured"]);
    expect(r.charts.map((c) => c.id)).not.toContain("vc-downtime");
  });

  it("lists failed cells with their error", async () => {
    const r = await writeReport(results);
    const md = await readFile(r.markdownPath, "utf8");
    const failed = mdTable(md, "Failed cells");
    expect(failed).toHaveLength(1);
    expect(failed[0]?.[1]).toBe("NOT_AVAILABLE");
  });
});

describe("vpc report on missing or corrupt results", () => {
  const failWith = async (): Promise<EvaluationError> => {
    const err = await writeReport(results).catch((e: unknown) => e);
    if (!EvaluationError.isInstance(err)) throw new Error(`expected an EvaluationError, got ${String(err)}`);
    return err;
  };

  it("names a missing run.json", async () => {
    await rm(join(results, "run.json"));
    const err = await failWith();
    expect(err.code).toBe("RESULTS_MISSING");
    expect(err.path).toBe(join(results, "run.json"));
    const errs: string[] = [];
    expect(await runReportCli([results], { stdout: () => undefined, stderr: (t) => errs.push(t) })).toBe(1);
    expect(errs.join("")).toContain(join(results, "run.json"));
  });

  it("names a missing records file", async () => {
    const name = (await readdir(join(results, "cells"))).find((f) => f.endsWith(".jsonl")) as string;
    await rm(join(results, "cells", name));
    const err = await failWith();
    expect(err.code).toBe("RESULTS_MISSING");
    expect(err.path).toBe(join(results, "cells", name));
  });

  it("names the file and line of a corrupt record", async () => {
    const name = (await readdir(join(results, "cells"))).find(
      (f) => f.startsWith("solo.cg-S.vpc.") && f.endsWith(".jsonl"),
    ) as string;
    const path = join(results, "cells", name);
    const lines = (await readFile(path, "utf8")).split("\n");
    lines[2] = lines[2]?.replace(/"soloDowntimeMs":[0-9.]+/, '"soloDowntimeMs":"fast"') ?? "";
    await writeFile(path, lines.join("\n"));
    const err = await failWith();
    expect(err.code).toBe("RESULTS_CORRUPT");
    expect(err.path).toBe(path);
    expect(err.line).toBe(3);
    expect(err.message).toContain(`${path}:3`);
    expect(err.message).toContain("soloDowntimeMs");
  });

  it("names a pause step that is not a number", async () => {
    const name = (await readdir(join(results, "cells"))).find(
      (f) => f.startsWith("solo.cg-S.cow.") && f.endsWith(".jsonl"),
    ) as string;
    const path = join(results, "cells", name);
    const text = await readFile(path, "utf8");
    await writeFile(path, text.replace('"agentMs":0.5', '"agentMs":"slow"'));
    const err = await failWith();
    expect([err.code, err.path, err.line]).toEqual(["RESULTS_CORRUPT", path, 2]);
    expect(err.message).toContain('field "agentMs" must be a finite number');
  });

  it("names a record file that is not JSON lines, and one truncated against its status", async () => {
    const name = (await readdir(join(results, "cells"))).find(
      (f) => f.startsWith("solo.cg-S.cow.") && f.endsWith(".jsonl"),
    ) as string;
    const path = join(results, "cells", name);
    const text = await readFile(path, "utf8");
    await writeFile(path, `${text}{"type":"checkpoint",`);
    let err = await failWith();
    expect([err.code, err.path, err.line]).toEqual([
      "RESULTS_CORRUPT",
      path,
      parseRecords(text, path).length + 1,
    ]);
    await writeFile(path, text.split("\n").slice(0, 2).join("\n"));
    err = await failWith();
    expect([err.code, err.path]).toEqual(["RESULTS_CORRUPT", path]);
    expect(err.message).toMatch(/has 2 records but its status file says \d+/);
  });

  it("names a corrupt status file and run.json", async () => {
    const name = (await readdir(join(results, "cells"))).find((f) => f.endsWith(".status.json")) as string;
    await writeFile(join(results, "cells", name), "{ not json");
    let err = await failWith();
    expect([err.code, err.path]).toEqual(["RESULTS_CORRUPT", join(results, "cells", name)]);
    await cp(FIXTURE, results, { recursive: true });
    const run = JSON.parse(await readFile(join(results, "run.json"), "utf8"));
    run.format = "something-else/9";
    await writeFile(join(results, "run.json"), JSON.stringify(run));
    err = await failWith();
    expect([err.code, err.path]).toEqual(["RESULTS_CORRUPT", join(results, "run.json")]);
  });
});

describe("vcPauseSteps (pure)", () => {
  const record = (
    epoch: number,
    offsets: Record<string, number> | null,
    steps: Record<string, Record<string, number>> | null,
  ): VcCheckpointRecord => ({
    type: "vc-checkpoint",
    epoch,
    vms: 2,
    hosts: 2,
    vcDowntimeMs: 50,
    heldFrames: 0,
    loggedFrames: 0,
    committed: true,
    full: false,
    pauseOffsetMs: offsets,
    soloDowntimeMs: null,
    steps,
  });

  it("takes the median of each step over every VM pause and the spread over epochs", () => {
    const r = vcPauseSteps("vpc", [
      record(1, { vm1: 0, vm2: 10 }, { vm1: { stopMs: 1, qmpStopMs: 4 }, vm2: { stopMs: 3 } }),
      record(2, { vm1: 30, vm2: 0 }, { vm1: { stopMs: 5, qmpStopMs: 8 }, vm2: { stopMs: 7 } }),
      record(3, { vm1: 0, vm2: 20 }, { vm1: { stopMs: 9 }, vm2: { stopMs: 11 } }),
    ]);
    expect(r).toEqual({
      engine: "vpc",
      epochs: 3,
      vmPauses: 6,
      spreadMedianMs: 20,
      stepsMedianMs: { stopMs: 6, qmpStopMs: 6 },
    });
    expect(Object.keys(r.stepsMedianMs)).toEqual(["stopMs", "qmpStopMs"]);
  });

  it("leaves out records from files written before steps were kept", () => {
    const r = vcPauseSteps("stop-copy", [record(1, null, null), record(2, { vm1: 0 }, {})]);
    expect(r).toMatchObject({ epochs: 0, vmPauses: 0, spreadMedianMs: null, stepsMedianMs: {} });
  });
});

describe("vc-checkpoint records", () => {
  it("read back with per-VM offsets, solo downtimes and steps, and without them from older files", () => {
    const line = JSON.stringify({
      type: "vc-checkpoint",
      epoch: 4,
      vms: 2,
      hosts: 2,
      vcDowntimeMs: 61.5,
      heldFrames: 3,
      loggedFrames: 1,
      committed: true,
      full: false,
      pauseOffsetMs: { vm1: 0, vm2: 12.5 },
      soloDowntimeMs: { vm1: 40, vm2: 44 },
      steps: { vm1: { stopMs: 2, qmpStopMs: 1.5 }, vm2: { stopMs: 3 } },
    });
    expect(parseRecordLine(line, "r.jsonl", 1)).toMatchObject({
      pauseOffsetMs: { vm1: 0, vm2: 12.5 },
      steps: { vm2: { stopMs: 3 } },
    });
    const old = JSON.parse(line) as Record<string, unknown>;
    delete old.pauseOffsetMs;
    delete old.soloDowntimeMs;
    delete old.steps;
    expect(parseRecordLine(JSON.stringify(old), "r.jsonl", 1)).toMatchObject({
      pauseOffsetMs: null,
      soloDowntimeMs: null,
      steps: null,
    });
    const bad = { ...JSON.parse(line), steps: { vm1: { stopMs: "fast" } } };
    expect(() => parseRecordLine(JSON.stringify(bad), "r.jsonl", 7)).toThrow(/r\.jsonl.*7|stopMs/);
  });
});
