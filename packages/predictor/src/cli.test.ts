import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { runPredictorCli } from "./cli.js";

function capture() {
  const out = { stdout: "", stderr: "" };
  return {
    out,
    io: {
      stdout: (t: string) => {
        out.stdout += t;
      },
      stderr: (t: string) => {
        out.stderr += t;
      },
    },
  };
}

describe("vpc predictor", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "predictor-cli-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("generates a trace and prints the comparison table and JSON", async () => {
    const path = join(dir, "hot.vdt");
    const g = capture();
    expect(
      await runPredictorCli(
        ["generate", "hot-set", path, "--pages", "4096", "--intervals", "6", "--set", "hotPages=300"],
        g.io,
      ),
    ).toBe(0);
    expect(g.out.stdout).toContain("wrote 6 intervals");
    const t = capture();
    expect(
      await runPredictorCli(["eval", path, "--strategy", "k-of-n:k=2,n=3", "--window-ms", "100"], t.io),
    ).toBe(0);
    expect(t.out.stdout).toMatch(/^5 checkpoints, 4096 pages/);
    for (const name of ["(cow)", "(stop-copy)", "(oracle)", "k-of-n:k=2,n=3"])
      expect(t.out.stdout).toContain(name);
    const j = capture();
    expect(
      await runPredictorCli(
        ["eval", path, "--strategies", "last  recency", "--json", "--fault-us", "20"],
        j.io,
      ),
    ).toBe(0);
    const report = JSON.parse(j.out.stdout);
    expect(report.costs.faultUs).toBe(20);
    expect(report.results.map((r: { name: string }) => r.name)).toEqual([
      "cow",
      "stop-copy",
      "oracle",
      "last",
      "recency:decay=0.7,threshold=1.2,n=8",
    ]);
    const again = capture();
    expect(await runPredictorCli(["generate", "hot-set", path], again.io)).toBe(1);
  });

  it("exits 2 on usage errors and bad specs, 1 on unreadable traces", async () => {
    const cases: Array<[string[], number, RegExp]> = [
      [[], 2, /missing command/],
      [["frobnicate"], 2, /unknown command/],
      [["eval"], 2, /exactly one TRACE/],
      [["eval", "x", "--bogus"], 2, /usage/],
      [["eval", "x", "--strategy", "k-of-n:k=9"], 2, /k \(9\) must not exceed n/],
      [["eval", join(dir, "missing.vdt")], 1, /open failed/],
      [["generate", "nope", "out"], 2, /unknown workload/],
      [["generate", "random", "out", "--set", "x=1"], 2, /unknown setting/],
    ];
    for (const [argv, code, message] of cases) {
      const c = capture();
      expect(await runPredictorCli(argv, c.io)).toBe(code);
      expect(c.out.stderr).toMatch(message);
    }
    const s = capture();
    expect(await runPredictorCli(["strategies"], s.io)).toBe(0);
    expect(s.out.stdout).toContain("cost-aware(SPEC)");
  });

  it("names an unknown option in its own words", async () => {
    const c = capture();
    expect(await runPredictorCli(["strategies", "--bogus"], c.io)).toBe(2);
    expect(c.out.stderr).toMatch(/^error: unknown option --bogus\n/);
    expect(c.out.stderr).not.toContain("positional argument");
  });

  it("prints strategies and a generated trace's summary as JSON with --json", async () => {
    const s = capture();
    expect(await runPredictorCli(["strategies", "--json"], s.io)).toBe(0);
    const list = JSON.parse(s.out.stdout);
    expect(list.strategies.map((k: { kind: string }) => k.kind)).toContain("k-of-n");
    expect(list.strategies.find((k: { kind: string }) => k.kind === "cost-aware").wraps).toBe(true);
    expect(list.defaults.length).toBeGreaterThan(0);
    const path = join(dir, "r.vdt");
    const g = capture();
    expect(
      await runPredictorCli(
        ["generate", "random", path, "--pages", "128", "--intervals", "3", "--json"],
        g.io,
      ),
    ).toBe(0);
    const summary = JSON.parse(g.out.stdout);
    expect(summary).toMatchObject({
      path,
      intervals: 3,
      header: { pageCount: 128 },
      options: { workload: "random" },
    });
  });
});
