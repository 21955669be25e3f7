import type { EpochMetrics } from "@vpc/cluster";
import { describe, expect, it } from "vitest";
import { expandCells, presetConfig } from "./experiments.js";
import type { Cell } from "./format.js";
import { recordingContext, testCell } from "./test-context.js";
import type { VcCluster, VcDeps } from "./vc.js";
import { createVcRestoreExecutor } from "./vc-restore.js";

const cell = (o: Partial<Cell> = {}): Cell =>
  testCell({ experiment: "restore", kernelRuns: 10, chainLength: 3, ...o });

const block = (verdict: string) => ` CG Benchmark Completed.\n Verification    =               ${verdict}\n`;

const metrics = (epoch: number): EpochMetrics => ({
  epoch,
  vcDowntimeMs: 10 + epoch,
  soloDowntimeMs: {},
  pauseMs: {},
  pauseOffsetMs: {},
  steps: {},
  heldFrames: 0,
  loggedFrames: 0,
  channelLogFrames: 0,
  droppedFrames: 0,
  checkpointBytes: 4096,
  commitMs: 5,
  full: epoch === 0,
});

/**
 * A fake cluster on a fake clock whose guests keep their workload output "in RAM": each epoch
 * costs 100 ms and lands after one more completed run per VM; a restore puts every VM's output
 * back to the epoch's; in the restored VMs each read completes one more run, and once the stop
 * file is touched the next read ends the loop.
 */
function world(
  o: { badVm?: string; failEpoch?: number; failRestore?: boolean; abort?: AbortController } = {},
) {
  let clock = 0;
  let epoch = 0;
  const log: string[] = [];
  const sleeps: number[] = [];
  const ram = new Map<string, string>();
  const snapshots = new Map<number, Map<string, string>>();
  const stopped = new Set<string>();
  const run = (vm: string) => block(vm === o.badVm ? "UNSUCCESSFUL" : "SUCCESSFUL");
  const cluster = (name: string, restored: boolean): VcCluster => ({
    checkpoint: async () => {
      clock += 100;
      const e = epoch++;
      if (e === o.failEpoch) throw Object.assign(new Error(`epoch ${e} aborted`), { epoch: e });
      for (const [vm, out] of ram) ram.set(vm, out + run(vm));
      snapshots.set(e, new Map(ram));
      log.push(`checkpoint ${e}`);
      return metrics(e);
    },
    startCheckpoints: () => {
      throw new Error("a restore cell takes its epochs one by one");
    },
    stopCheckpoints: async () => undefined,
    exec: async (vm, command) => {
      if (command.includes("setsid")) {
        log.push(`launch ${vm}`);
        ram.set(vm, "running\n");
        return { stdout: "" };
      }
      if (command.startsWith("touch ")) {
        log.push(`stop ${vm}`);
        stopped.add(vm);
        return { stdout: "" };
      }
      const out = ram.get(vm) ?? "";
      if (restored) ram.set(vm, out + (stopped.has(vm) ? "VPC-EVAL-RESTORE-DONE\n" : run(vm)));
      return { stdout: out };
    },
    kill: async () => {
      log.push(`kill ${name}`);
    },
    close: async () => {
      log.push(`close ${name}`);
    },
  });
  const deps: VcDeps = {
    up: async () => {
      log.push("up");
      return "tb";
    },
    start: async () => cluster("original", false),
    restore: async (_config, tb, e) => {
      log.push(`restore ${e} on ${String(tb)}`);
      if (o.failRestore) throw new Error("restore failed");
      o.abort?.abort();
      for (const [vm, out] of snapshots.get(e)!) ram.set(vm, out);
      return {
        cluster: cluster("restored", true),
        result: {
          epoch: e,
          totalMs: 4321,
          skipped: [],
          vms: [
            { vmId: "evm1", ms: 4000, replayed: 3 },
            { vmId: "evm2", ms: 4100, replayed: 0 },
          ],
        },
      };
    },
    down: async (tb) => {
      log.push(`down ${String(tb)}`);
      return [];
    },
    fabricPrefix: async () => "10.78.5.0/24",
    sleep: async (ms) => {
      sleeps.push(ms);
      clock += ms;
    },
    now: () => clock,
  };
  return { deps, log, sleeps };
}

const context = recordingContext;

describe("VC restore executor (fake cluster)", () => {
  it("takes the chain at the interval, kills, times Cluster.restore and verifies every VM", async () => {
    const { deps, log, sleeps } = world();
    const { ctx, records } = context();
    await createVcRestoreExecutor(deps, { pollMs: 50 })(cell(), ctx);
    expect(records.map((r) => r.type)).toEqual([
      "vc-checkpoint",
      "vc-checkpoint",
      "vc-checkpoint",
      "restore",
    ]);
    expect(records[0]).toMatchObject({ epoch: 0, full: true, vms: 2, hosts: 2 });
    expect(records.at(-1)).toEqual({
      type: "restore",
      epoch: 2,
      chainLength: 3,
      memMiB: 256,
      vms: 2,
      hosts: 2,
      restoreMs: 4321,
      ramMs: null,
      vmMs: null,
      verified: true,
      // Per VM: 3 runs before the last epoch, 2 completed in the restored VM.
      verifiedRuns: 10,
      perVm: [
        { vmId: "evm1", ms: 4000, replayed: 3 },
        { vmId: "evm2", ms: 4100, replayed: 0 },
      ],
    });
    // Start to start at 1000 ms with 100 ms epochs; no wait after the last one.
    expect(sleeps.slice(0, 2)).toEqual([900, 900]);
    expect(log.slice(0, 7)).toEqual([
      "up",
      "launch evm1",
      "launch evm2",
      "checkpoint 0",
      "checkpoint 1",
      "checkpoint 2",
      "kill original",
    ]);
    expect(log).toContain("restore 2 on tb");
    expect(log.slice(-2)).toEqual(["close restored", "down tb"]);
  });

  it("fails the cell naming the VM whose restored workload did not verify, and tears down", async () => {
    const { deps, log } = world({ badVm: "evm2" });
    const { ctx, records } = context();
    await expect(createVcRestoreExecutor(deps, { pollMs: 50 })(cell(), ctx)).rejects.toThrow(
      /not verified after the VC restore on evm2:/,
    );
    expect(records.at(-1)).toMatchObject({ type: "restore", verified: false });
    expect(log.slice(-2)).toEqual(["close restored", "down tb"]);
  });

  it("fails the cell when the restored workload never stops in time", async () => {
    const { deps } = world();
    const { ctx, records } = context();
    await expect(
      createVcRestoreExecutor(deps, { pollMs: 50, finishMs: 0 })(cell({ chainLength: 1 }), ctx),
    ).rejects.toThrow(/workload did not stop/);
    expect(records.at(-1)).toMatchObject({ type: "restore", verified: false });
  });

  it("records an aborted epoch and restores nothing", async () => {
    const { deps, log } = world({ failEpoch: 1 });
    const { ctx, records } = context();
    await expect(createVcRestoreExecutor(deps)(cell(), ctx)).rejects.toThrow(
      /global epoch 2 of 3 aborted; nothing comparable/,
    );
    expect(records.map((r) => r.type)).toEqual(["vc-checkpoint", "checkpoint-failure"]);
    expect(records[1]).toMatchObject({ vmId: "cluster", epoch: 1, stage: "global-epoch" });
    expect(log.some((l) => l.startsWith("restore") || l.startsWith("kill"))).toBe(false);
    expect(log.slice(-2)).toEqual(["close original", "down tb"]);
  });

  it("tears the testbed down when the restore fails", async () => {
    const { deps, log } = world({ failRestore: true });
    const { ctx, records } = context();
    await expect(createVcRestoreExecutor(deps)(cell(), ctx)).rejects.toThrow(/restore failed/);
    expect(records.some((r) => r.type === "restore")).toBe(false);
    expect(log.at(-1)).toBe("down tb");
  });

  it("on an abort during the restore kills instead of closing, and tears down", async () => {
    const abort = new AbortController();
    const { deps, log } = world({ abort });
    const { ctx, records } = context(abort.signal);
    await expect(createVcRestoreExecutor(deps)(cell(), ctx)).rejects.toThrow(/interrupted/);
    expect(records.some((r) => r.type === "restore")).toBe(false);
    expect(log.slice(-2)).toEqual(["kill original", "down tb"]);
    expect(log.some((l) => l.startsWith("close"))).toBe(false);
  });

  it("needs an engine and a chain", async () => {
    const { deps, log } = world();
    const { ctx } = context();
    await expect(createVcRestoreExecutor(deps)(cell({ engine: "none" }), ctx)).rejects.toThrow(
      /needs an engine/,
    );
    await expect(createVcRestoreExecutor(deps)(cell({ chainLength: null }), ctx)).rejects.toThrow(
      /chain length/,
    );
    expect(log).toEqual([]);
  });
});

describe("restore presets", () => {
  it("quick adds a 2-VM cluster on 2 hosts; full goes to 4 VMs", () => {
    const quick = expandCells(presetConfig("restore", "quick"));
    expect(new Set(quick.map((c) => `v${c.vms}h${c.hosts}`))).toEqual(new Set(["v1h1", "v2h2"]));
    const full = expandCells(presetConfig("restore", "full"));
    expect(new Set(full.map((c) => `v${c.vms}h${c.hosts}`))).toEqual(new Set(["v1h1", "v2h2", "v4h2"]));
  });
});
