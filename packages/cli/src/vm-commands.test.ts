import { describe, expect, it } from "vitest";
import { main } from "./cli.js";
import { formatSkippedEpochs, parseCheckpointArgs, parseRestoreArgs } from "./vm-commands.js";

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { stdout: (t: string) => out.push(t), stderr: (t: string) => err.push(t) }, out, err };
}

describe("parseCheckpointArgs", () => {
  it("fills defaults and maps options", () => {
    const a = parseCheckpointArgs([
      "--store",
      "/tmp/s",
      "--engine",
      "cow",
      "--count",
      "3",
      "--interval-ms",
      "500",
    ]);
    expect(a).toMatchObject({
      store: "/tmp/s",
      engine: { name: "cow", strategy: undefined, params: { buffer: 0 } },
      count: 3,
      intervalMs: 500,
      name: "vm0",
      memMiB: 256,
    });
    expect(a.workload).toContain("vpc-memcheck");
  });

  it("rejects a missing store, a bad engine and bad numbers", () => {
    expect(() => parseCheckpointArgs([])).toThrow(/--store/);
    expect(() => parseCheckpointArgs(["--store", "s", "--engine", "teleport"])).toThrow(/--engine/);
    expect(() => parseCheckpointArgs(["--store", "s", "--count", "0"])).toThrow(/--count/);
    expect(() => parseCheckpointArgs(["--store", "s", "--interval-ms", "ten"])).toThrow(/--interval-ms/);
    expect(() => parseCheckpointArgs(["--store", "s", "--log-level", "loud"])).toThrow(/--log-level/);
  });
});

describe("parseRestoreArgs", () => {
  it("maps options", () => {
    expect(
      parseRestoreArgs(["--store", "s", "--vm", "a1", "--epoch", "4", "--exec", "uptime"]),
    ).toMatchObject({
      store: "s",
      vmId: "a1",
      epoch: 4,
      exec: "uptime",
      hold: false,
      lazy: false,
    });
    expect(parseRestoreArgs(["--store", "s", "--lazy"]).lazy).toBe(true);
  });

  it("rejects a missing store and a negative epoch", () => {
    expect(() => parseRestoreArgs([])).toThrow(/--store/);
    expect(() => parseRestoreArgs(["--store", "s", "--epoch", "-1"])).toThrow(/--epoch/);
  });
});

describe("vpc checkpoint / restore usage", () => {
  it("exits 2 with the usage on bad arguments and 0 on --help", async () => {
    const bad = capture();
    expect(await main(["checkpoint"], bad.io)).toBe(2);
    expect(bad.err.join("")).toContain("Usage: vpc checkpoint");
    const help = capture();
    expect(await main(["restore", "--help"], help.io)).toBe(0);
    expect(help.out.join("")).toContain("Usage: vpc restore");
  });

  it("names the store when it does not exist", async () => {
    const c = capture();
    expect(await main(["restore", "--store", "/nonexistent/vpc-store"], c.io)).toBe(1);
    expect(c.err.join("")).toContain("/nonexistent/vpc-store");
  });
});

describe("formatSkippedEpochs", () => {
  it("one warning per epoch passed over, naming it, the epoch restored and why; nothing when none", () => {
    expect(formatSkippedEpochs(4, [])).toBe("");
    expect(
      formatSkippedEpochs(4, [
        { epoch: 6, path: "/s/vms/vm0/e6", reason: "its part /s/vms/vm0/e6 exists but no global manifest" },
        {
          epoch: 5,
          path: "/s/epochs/5.epoch",
          reason: "its global manifest /s/epochs/5.epoch fails its check",
        },
      ]),
    ).toBe(
      "vpc restore: warning: skipped epoch 6, restoring epoch 4: its part /s/vms/vm0/e6 exists but no global manifest\n" +
        "vpc restore: warning: skipped epoch 5, restoring epoch 4: its global manifest /s/epochs/5.epoch fails its check\n",
    );
  });
});
