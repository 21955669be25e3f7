import { describe, expect, it } from "vitest";
import { EXIT_OK, EXIT_USAGE, formatDemoSummary, main, parseDemoArgs } from "./cli.js";
import type { DemoResult } from "./demo.js";

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { stdout: (t: string) => out.push(t), stderr: (t: string) => err.push(t) }, out, err };
}

describe("parseDemoArgs", () => {
  it("maps options", () => {
    const p = parseDemoArgs(["--mem", "512", "--run-ms", "100", "--transport", "exec", "--json", "--keep"]);
    expect(p.json).toBe(true);
    expect(p.options).toMatchObject({ memMiB: 512, runAfterMs: 100, transport: "exec", keep: true });
  });

  it("rejects bad values with a usage error", () => {
    for (const args of [
      ["--mem", "12"],
      ["--mem", "x"],
      ["--transport", "fd"],
      ["--log-level", "loud"],
      ["extra"],
      ["--nope"],
    ]) {
      expect(() => parseDemoArgs(args)).toThrow();
    }
  });
});

describe("main", () => {
  it("prints usage and exits 2 without a command", async () => {
    const c = capture();
    expect(await main([], c.io)).toBe(EXIT_USAGE);
    expect(c.err.join("")).toContain("Usage: vpc <command>");
  });

  it("exits 0 for --help and demo --help", async () => {
    const a = capture();
    expect(await main(["--help"], a.io)).toBe(EXIT_OK);
    expect(a.out.join("")).toContain("demo");
    const b = capture();
    expect(await main(["demo", "--help"], b.io)).toBe(EXIT_OK);
    expect(b.out.join("")).toContain("--checkpoint-dir");
  });

  it("names an unknown command and a bad option", async () => {
    const a = capture();
    expect(await main(["frobnicate"], a.io)).toBe(EXIT_USAGE);
    expect(a.err.join("")).toContain('unknown command "frobnicate"');
    const b = capture();
    expect(await main(["demo", "--mem", "1"], b.io)).toBe(EXIT_USAGE);
    expect(b.err.join("")).toContain("--mem must be an integer >= 64");
  });
});

describe("formatDemoSummary", () => {
  it("shows every measured figure", () => {
    const r: DemoResult = {
      ok: true,
      failure: undefined,
      accel: "tcg",
      memMiB: 256,
      bootMs: 6000,
      counter: { beforePause: "10", checkpointed: "12", beforeKill: "70", afterRestore: "20" },
      pauseMs: 150.25,
      deviceState: { bytes: 585442, saveMs: 5.5, transport: "unix" },
      ramCopyMs: 140,
      ramBytes: 268435456,
      restoreMs: 320,
      restoreTimings: {
        ramRestoreMs: 100,
        qemuStartMs: 30,
        guestMs: 6,
        contMs: 0.2,
        sshMs: 180,
        totalMs: 320,
      },
      checkpointDir: undefined,
    };
    const text = formatDemoSummary(r);
    for (const s of [
      "OK",
      "150.3 ms",
      "585442 bytes",
      "5.5 ms (unix)",
      "140.0 ms",
      "320.0 ms",
      "after restore 20",
    ]) {
      expect(text).toContain(s);
    }
  });
});

describe("vpc predictor", () => {
  it("dispatches to the predictor CLI", async () => {
    const list = capture();
    expect(await main(["predictor", "strategies"], list.io)).toBe(EXIT_OK);
    expect(list.out.join("")).toContain("early-writers");
    const bad = capture();
    expect(await main(["predictor", "eval"], bad.io)).toBe(EXIT_USAGE);
  });
});
