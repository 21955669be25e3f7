import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";

import { NpbError } from "./errors.js";
import { parseNpbResult } from "./result.js";

const fixture = (name: string) => readFileSync(new URL(`./fixtures/${name}`, import.meta.url), "utf8");

function parseError(stdout: string): NpbError {
  try {
    parseNpbResult(stdout);
  } catch (e) {
    if (NpbError.isInstance(e)) return e;
    throw e;
  }
  throw new Error("parseNpbResult did not throw");
}

describe("parseNpbResult", () => {
  it("reads our EP block (single-number size)", () => {
    const r = parseNpbResult(fixture("ep-S-np1.txt"));
    expect(r).toMatchObject({
      kernel: "ep",
      class: "S",
      size: "33554432",
      dimensions: [33554432],
      iterations: 0,
      processes: 1,
      verified: true,
    });
    expect(r.seconds).toBeGreaterThanOrEqual(0);
    expect(r.mopsTotal).toBeGreaterThanOrEqual(0);
  });

  it("reads a 3-D size and the process count (MG, 2 ranks)", () => {
    const r = parseNpbResult(fixture("mg-S-np2.txt"));
    expect(r).toMatchObject({ kernel: "mg", size: "32x32x32", dimensions: [32, 32, 32], processes: 2 });
    expect(r.verified).toBe(true);
  });

  it("reports UNSUCCESSFUL as verified: false", () => {
    const r = parseNpbResult(fixture("is-W-np4-wrong-reference.txt"));
    expect(r).toMatchObject({ kernel: "is", class: "W", processes: 4, iterations: 10, verified: false });
  });

  it("reads the NAS reference's own block (exact values)", () => {
    expect(parseNpbResult(fixture("nas-ep-S-3.4.3.txt"))).toEqual({
      kernel: "ep",
      class: "S",
      size: "33554432",
      dimensions: [33554432],
      iterations: 0,
      seconds: 0.33,
      mopsTotal: 101.59,
      processes: 1,
      verified: true,
    });
  });

  it("accepts CRLF line ends and a missing final newline", () => {
    const text = fixture("ft-S-np2.txt").replace(/\n/g, "\r\n").trimEnd();
    expect(parseNpbResult(text)).toMatchObject({ kernel: "ft", size: "64x64x64", verified: true });
  });

  it("skips stray lines interleaved inside the block", () => {
    const lines = fixture("nas-ep-S-3.4.3.txt").split("\n");
    const at = lines.findIndex((l) => l.includes("Time in seconds"));
    lines.splice(at, 0, "[proxy:0:0@host] warning: something odd", "");
    const r = parseNpbResult(lines.join("\n"));
    expect(r.seconds).toBe(0.33);
    expect(r.verified).toBe(true);
  });

  it("gives the same answer when the output is cut anywhere and re-joined", () => {
    const text = fixture("mg-S-np2.txt");
    const whole = parseNpbResult(text);
    for (let cut = 0; cut <= text.length; cut += 97) {
      expect(parseNpbResult(text.slice(0, cut) + text.slice(cut))).toEqual(whole);
    }
  });

  it("fails with RESULT_MISSING without a block", () => {
    const e = parseError(" NAS Parallel Benchmarks 3.4 -- EP Benchmark\n\n");
    expect(e.code).toBe("RESULT_MISSING");
    expect(parseError("").code).toBe("RESULT_MISSING");
  });

  it("fails with RESULT_MALFORMED naming the field of a truncated block", () => {
    const text = fixture("ep-S-np1.txt");
    const e = parseError(text.slice(0, text.indexOf(" Mop/s total")));
    expect(e.code).toBe("RESULT_MALFORMED");
    expect(e.field).toBe("Mop/s total");
  });

  it("rejects unparsable values", () => {
    const base = fixture("nas-ep-S-3.4.3.txt");
    const cases: [string, string, string][] = [
      ["Class           =                        S", "Class           =                        Q", "Class"],
      [
        "Time in seconds =                     0.33",
        "Time in seconds =                      NaN",
        "Time in seconds",
      ],
      [
        "Verification    =               SUCCESSFUL",
        "Verification    =                    MAYBE",
        "Verification",
      ],
      [
        "Total processes =                        1",
        "Total processes =                      1.5",
        "Total processes",
      ],
      ["Size            =                 33554432", "Size            =                   32x32x", "Size"],
    ];
    for (const [from, to, field] of cases) {
      const e = parseError(base.replace(from, to));
      expect(e.code, field).toBe("RESULT_MALFORMED");
      expect(e.field).toBe(field);
    }
  });

  it("rejects two blocks and unknown benchmarks", () => {
    const base = fixture("nas-ep-S-3.4.3.txt");
    expect(parseError(base + base).field).toBe("Benchmark Completed");
    expect(parseError(base.replace("EP Benchmark", "BT Benchmark")).code).toBe("RESULT_MALFORMED");
  });
});
