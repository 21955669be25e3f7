import { describe, expect, it } from "vitest";
import { validateVmConfig } from "../internal/config.js";
import { decodeEnvelope, encodeEnvelope } from "./envelope.js";
import { formatEngineSpec, parseEngineSpec } from "./spec.js";
import { distribution, quantile, summarizeCheckpoints } from "./summary.js";
import type { CheckpointRecord } from "./types.js";

describe("parseEngineSpec", () => {
  it("parses names, strategies and parameters with defaults", () => {
    expect(parseEngineSpec("cow")).toEqual({ name: "cow", strategy: undefined, params: { buffer: 0 } });
    expect(parseEngineSpec("vpc").strategy).toBe("k-of-n:k=2,n=4");
    expect(parseEngineSpec("vpc").params).toEqual({
      window: 0,
      front: 0,
      fallback: 90,
      learn: 1,
      buffer: 0,
      adapt: 1,
    });
    const v = parseEngineSpec("vpc(early-writers:windowMs=100):window=5,learn=0");
    expect(v).toEqual({
      name: "vpc",
      strategy: "early-writers:windowMs=100",
      params: { window: 5, front: 0, fallback: 90, learn: 0, buffer: 0, adapt: 1 },
    });
    expect(formatEngineSpec(v)).toBe(
      "vpc(early-writers:windowMs=100):window=5,front=0,fallback=90,learn=0,buffer=0,adapt=1",
    );
    expect(parseEngineSpec("precopy:rounds=2").params).toEqual({ rounds: 2, threshold: 512, batch: 2048 });
  });
  it("rejects unknown engines, parameters and misplaced strategies", () => {
    for (const bad of [
      "nope",
      "cow(last)",
      "cow:rounds=1",
      "precopy:rounds=-1",
      "precopy:rounds",
      "precopy:batch=0",
      "vpc:batch=1",
      "cow:buffer=1001",
      "vpc:learn=2",
      "vpc:fallback=150",
    ]) {
      expect(() => parseEngineSpec(bad), bad).toThrow(/engine/);
    }
  });
  it("reads its canonical string back to the same spec (what a process sends another)", () => {
    for (const text of [
      "stop-copy",
      "cow:buffer=5",
      "vpc",
      "vpc(last):window=5",
      "vpc(a(b)c)",
      "precopy:rounds=2",
    ]) {
      const spec = parseEngineSpec(text);
      expect(parseEngineSpec(formatEngineSpec(spec)), text).toEqual(spec);
    }
  });
});

describe("device-state envelope", () => {
  const vm = validateVmConfig({ name: "vm0" });
  it("round-trips flags, meta and stream", () => {
    const stream = Uint8Array.from([0x51, 0x45, 0x56, 0x4d, 1, 2, 3]);
    for (const ramIncluded of [false, true]) {
      const d = decodeEnvelope(
        encodeEnvelope({ ramIncluded, meta: { engine: "cow:batch=2048", vm }, stream }),
      );
      expect(d.ramIncluded).toBe(ramIncluded);
      expect(d.meta.engine).toBe("cow:batch=2048");
      expect(d.meta.vm).toEqual(vm);
      expect([...d.stream]).toEqual([...stream]);
    }
  });
  it("rejects a raw stream, a truncated meta and unknown flags", () => {
    const good = encodeEnvelope({ ramIncluded: false, meta: { engine: "x", vm }, stream: new Uint8Array(4) });
    expect(() => decodeEnvelope(Buffer.from("QEVM\0\0\0\x03 raw migration stream"))).toThrow(/envelope/);
    expect(() => decodeEnvelope(good.subarray(0, 20))).toThrow(/meta/);
    const flagged = Buffer.from(good);
    flagged.writeUInt32LE(6, 8);
    expect(() => decodeEnvelope(flagged)).toThrow(/flags/);
  });
});

describe("summary", () => {
  it("computes quantiles by linear interpolation", () => {
    expect(quantile([], 0.5)).toBeNull();
    expect(quantile([1, 2, 3, 4], 0.5)).toBe(2.5);
    expect(distribution([5, null, 1, 3]).median).toBe(3);
    expect(
      distribution([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21]).p95,
    ).toBe(20);
  });
  it("leaves full epochs and failures out of the distributions and pools the predictions", () => {
    const base = { ok: true as const, vmId: "v", engine: "vpc", mode: "async" as const, stallMs: 1 };
    const rec = (epoch: number, full: boolean, pauseMs: number, pred?: [number, number, number]) =>
      ({
        ...base,
        epoch,
        full,
        pauseMs,
        soloDowntimeMs: pauseMs + 1,
        cowFaults: 10,
        pagesDirty: 5,
        memoryOverhead: 0.01,
        durableMs: 20,
        checkpointBytes: 100,
        prediction: pred ? { epoch: epoch - 1, predicted: pred[0], hits: pred[1], written: pred[2] } : null,
      }) as unknown as CheckpointRecord;
    const failure: CheckpointRecord = {
      ok: false,
      vmId: "v",
      epoch: 3,
      engine: "vpc",
      stage: "commit",
      error: { name: "E", code: undefined, message: "disk full" },
      startedAt: "",
    };
    const s = summarizeCheckpoints([
      rec(0, true, 500),
      rec(1, false, 4, [10, 5, 20]),
      rec(2, false, 6, [10, 10, 10]),
      failure,
    ]);
    expect(s.checkpoints).toBe(3);
    expect(s.failed).toBe(1);
    expect(s.fullEpochs).toBe(1);
    expect(s.pauseMs.median).toBe(5);
    expect(s.soloDowntimeMs.max).toBe(7);
    expect(s.precision).toBe(15 / 20);
    expect(s.recall).toBe(15 / 30);
  });
});
