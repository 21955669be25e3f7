import type { EpochMetrics } from "@vpc/cluster";
import { parseEngineSpec } from "@vpc/controller";
import { describe, expect, it } from "vitest";
import { EvaluationError } from "./errors.js";
import { expandCells, presetConfig } from "./experiments.js";

import { recordingContext, testCell } from "./test-context.js";
import {
  createVcExecutor,
  freeFabricPrefix,
  judgeOutput,
  type VcCluster,
  type VcDeps,
  vcClusterConfig,
  vcRunCommand,
} from "./vc.js";

const cell = testCell;

const RESULT = (verdict: string) =>
  ` CG Benchmark Completed.\n Class           =                        S\n Verification    =               ${verdict}\n`;

const metrics = (epoch: number, full: boolean): EpochMetrics => ({
  epoch,
  vcDowntimeMs: 10 + epoch,
  soloDowntimeMs: {},
  pauseMs: {},
  pauseOffsetMs: {},
  steps: {},
  heldFrames: epoch,
  loggedFrames: 2 * epoch,
  channelLogFrames: 0,
  droppedFrames: 0,
  checkpointBytes: 4096,
  commitMs: 5,
  full,
});

/**
 * A fake cluster on a fake clock: each kernel run prints its result `runMs` after the launch and
 * exits (or, with `hang`, never exits); each poll advances the clock by `pollMs`; the checkpoint
 * loop emits one epoch per poll while running.
 */
function fakeWorld(o: {
  verdict?: string;
  hang?: boolean;
  failStart?: boolean;
  abortOnBoot?: AbortController;
}) {
  let clock = 0;
  const log: string[] = [];
  let launchedAt: number | undefined;
  let epoch = 0;
  let onEpoch: ((m: EpochMetrics | Error) => void) | undefined;
  const cluster: VcCluster = {
    checkpoint: async () => metrics(epoch++, epoch === 1),
    startCheckpoints: (cb) => {
      log.push("startCheckpoints");
      onEpoch = cb;
    },
    stopCheckpoints: async () => {
      log.push("stopCheckpoints");
      onEpoch = undefined;
    },
    exec: async (_vm, command) => {
      if (command.startsWith("cd /root && setsid")) {
        log.push("launch");
        launchedAt = clock;
        return { stdout: "" };
      }
      if (command.startsWith("cat ")) {
        if (epoch === 3) onEpoch?.(new EvaluationError("CELL_FAILED", "epoch 3 aborted"));
        onEpoch?.(metrics(epoch++, false));
        if (launchedAt === undefined || clock - launchedAt < 1000) return { stdout: "running\n" };
        const out = `running\n${RESULT(o.verdict ?? "SUCCESSFUL")}`;
        return { stdout: o.hang ? out : `${out}VPC-EVAL-DONE rc=0\n` };
      }
      if (command.startsWith("kill -9")) log.push("kill-run");
      return { stdout: "" };
    },
    kill: async () => {
      log.push("kill");
    },
    close: async () => {
      log.push("close");
    },
  };
  const deps: VcDeps = {
    up: async () => {
      log.push("up");
      return "tb";
    },
    start: async () => {
      if (o.failStart) throw new Error("boot failed");
      o.abortOnBoot?.abort();
      return cluster;
    },
    restore: async () => {
      throw new Error("vc-scale never restores");
    },
    down: async (tb) => {
      log.push(`down ${String(tb)}`);
      return [];
    },
    fabricPrefix: async () => "10.78.5.0/24",
    sleep: async (ms) => {
      clock += ms;
    },
    now: () => clock,
  };
  return { deps, log };
}

const context = recordingContext;

describe("vc-scale cluster description", () => {
  it("spreads VMs over hosts in blocks, one rank per VM, the cell's engine parsed once", () => {
    const c = vcClusterConfig(cell({ vms: 4, hosts: 2, engine: "vpc(k-of-n:k=2,n=4)" }), "10.78.9.0/24");
    expect(c.hosts.map((h) => h.vms.map((v) => v.name))).toEqual([
      ["evm1", "evm2"],
      ["evm3", "evm4"],
    ]);
    expect(c.engine).toEqual(parseEngineSpec("vpc(k-of-n:k=2,n=4)"));
    expect(c.workload).toEqual({ kernel: "cg", class: "S", np: 4, repeat: 1 });
    expect(c.fabric.bridgeIp).toBe("10.78.9.1");
    expect(
      vcClusterConfig(cell({ vms: 3, hosts: 2 }), "10.78.9.0/24").hosts.map((h) => h.vms.length),
    ).toEqual([2, 1]);
    expect(vcClusterConfig(cell({ engine: "none" }), "10.78.9.0/24").engine).toEqual(
      parseEngineSpec("stop-copy"),
    );
    expect(vcClusterConfig(cell({ engine: "vpc(last):window=5" }), "10.78.9.0/24").engine).toEqual(
      parseEngineSpec("vpc(last):window=5"),
    );
  });

  it("rejects cells a cluster cannot run", () => {
    expect(() => vcClusterConfig(cell({ vms: 1, hosts: 2 }), "10.78.9.0/24")).toThrow(/hosts ≤ VMs/);
    expect(() => vcClusterConfig(cell({ engine: "qemu-stop" }), "10.78.9.0/24")).toThrow(/agent engine/);
    expect(() => vcClusterConfig(cell({ engine: "vpc:x=1" }), "10.78.9.0/24")).toThrow(/no parameter x/);
  });

  it("picks a fabric prefix no interface uses", () => {
    const ip = "3: vpcb1    inet 10.78.1.1/24 brd 10.78.1.255 scope global vpcb1\n";
    expect(freeFabricPrefix(ip, () => 0)).toBe("10.78.2.0/24");
    const all = Array.from(
      { length: 254 },
      (_, i) => `3: b${i}    inet 10.78.${i + 1}.1/24 scope global`,
    ).join("\n");
    expect(() => freeFabricPrefix(all)).toThrow(/no free fabric prefix/);
  });

  it("launches the kernel detached across every VM and judges its output", () => {
    const c = vcClusterConfig(cell(), "10.78.9.0/24");
    const cmd = vcRunCommand(c, ["evm1", "evm2"]);
    expect(cmd).toMatch(/setsid sh -c '.*-hosts evm1,evm2 -n 2 \/opt\/npb\/bin\/cg S;.*' .*&$/);
    expect(judgeOutput("x")).toEqual({ verification: "none", exited: false, rc: null });
    expect(judgeOutput(`${RESULT("SUCCESSFUL")}VPC-EVAL-DONE rc=0`)).toEqual({
      verification: "successful",
      exited: true,
      rc: 0,
    });
    expect(judgeOutput(RESULT("UNSUCCESSFUL")).verification).toBe("failed");
  });
});

describe("vc-scale presets", () => {
  it("quick: 1, 2 and 4 VMs, one VM per host up to 2 hosts, the no-checkpoint baseline first", () => {
    const cells = expandCells(presetConfig("vc-scale", "quick"));
    expect(cells.map((c) => `${c.engine}.v${c.vms}h${c.hosts}`)).toEqual(
      [1, 2, 4].flatMap((v) =>
        ["none", "vpc", "precopy", "stop-copy"].map((e) => `${e}.v${v}h${Math.min(v, 2)}`),
      ),
    );
    const full = expandCells(presetConfig("vc-scale", "full"));
    expect(new Set(full.map((c) => `v${c.vms}h${c.hosts}`))).toEqual(
      new Set(["v1h1", "v2h1", "v2h2", "v4h1", "v4h2"]),
    );
  });
});

describe("vc-scale executor (fake cluster)", () => {
  it("records every epoch, the full first one marked, a failed epoch, and the run; then tears down", async () => {
    const { deps, log } = fakeWorld({});
    const { ctx, records } = context();
    await createVcExecutor(deps, { pollMs: 300 })(cell(), ctx);
    const vc = records.filter((r) => r.type === "vc-checkpoint");
    expect(vc[0]).toMatchObject({ epoch: 0, full: true, vms: 2, hosts: 2, vcDowntimeMs: 10 });
    expect(vc.slice(1).every((r) => r.type === "vc-checkpoint" && r.full === false)).toBe(true);
    expect(records.filter((r) => r.type === "checkpoint-failure")).toHaveLength(1);
    const run = records.at(-1);
    expect(run).toMatchObject({ type: "run", kernelRuns: 2, verifiedRuns: 2, failedCheckpoints: 1 });
    expect(run?.type === "run" && run.checkpoints).toBe(vc.length);
    // Polled every 300 ms, the result appears once 1000 ms have passed: 1200 ms per run.
    expect(run?.type === "run" && run.wallMs).toBe(2400);
    expect(log.filter((l) => l === "launch")).toHaveLength(2);
    expect(log.slice(-3)).toEqual(["stopCheckpoints", "close", "down tb"]);
  });

  it("runs the no-checkpoint baseline without any epoch", async () => {
    const { deps, log } = fakeWorld({});
    const { ctx, records } = context();
    await createVcExecutor(deps)(cell({ engine: "none" }), ctx);
    expect(records.map((r) => r.type)).toEqual(["run"]);
    expect(log).not.toContain("startCheckpoints");
  });

  it("fails the cell on an unverified result and still tears down", async () => {
    const { deps, log } = fakeWorld({ verdict: "UNSUCCESSFUL" });
    const { ctx, records } = context();
    await expect(createVcExecutor(deps)(cell(), ctx)).rejects.toThrow(/verification succeeded in 0 of 2/);
    expect(records.at(-1)).toMatchObject({ type: "run", verifiedRuns: 0 });
    expect(log.slice(-2)).toEqual(["close", "down tb"]);
  });

  it("ends a run hung in MPI_Finalize after the grace period and counts it", async () => {
    const { deps, log } = fakeWorld({ hang: true });
    const { ctx, records } = context();
    await createVcExecutor(deps, { finalizeGraceMs: 2000 })(cell({ kernelRuns: 1 }), ctx);
    expect(log).toContain("kill-run");
    expect(records.at(-1)).toMatchObject({ type: "run", verifiedRuns: 1, finalizeHangs: 1, wallMs: 1200 });
  });

  it("gives up on a run that prints no result in time", async () => {
    const { deps } = fakeWorld({ hang: true });
    deps.now = (() => {
      let t = 0;
      return () => (t += 100_000);
    })();
    const { ctx } = context();
    await expect(createVcExecutor(deps, { runTimeoutMs: 50_000 })(cell(), ctx)).rejects.toThrow(
      /no NPB result within 50 s/,
    );
  });

  it("tears the testbed down when the cluster does not start", async () => {
    const { deps, log } = fakeWorld({ failStart: true });
    const { ctx } = context();
    await expect(createVcExecutor(deps)(cell(), ctx)).rejects.toThrow(/boot failed/);
    expect(log).toEqual(["up", "down tb"]);
  });

  it("tears down a testbed that was being made when the abort came", async () => {
    const abort = new AbortController();
    const { deps, log } = fakeWorld({});
    const up = deps.up;
    deps.up = async (c) => {
      abort.abort();
      return up(c);
    };
    const { ctx } = context(abort.signal);
    await expect(createVcExecutor(deps)(cell(), ctx)).rejects.toThrow(/interrupted/);
    expect(log).toEqual(["up", "down tb"]);
  });

  it("on abort kills the cluster instead of a graceful close, and tears down", async () => {
    const abort = new AbortController();
    const { deps, log } = fakeWorld({ abortOnBoot: abort });
    const { ctx, records } = context(abort.signal);
    // The abort lands while the cluster boots: nothing more runs on it, it is killed, not closed.
    await expect(createVcExecutor(deps)(cell(), ctx)).rejects.toThrow(/interrupted/);
    expect(records).toEqual([]);
    expect(log).toEqual(["up", "kill", "down tb"]);
    const again = fakeWorld({});
    const late = new AbortController();
    const { ctx: ctx2 } = context(late.signal);
    again.deps.sleep = async () => late.abort();
    await expect(createVcExecutor(again.deps)(cell(), ctx2)).rejects.toThrow(/interrupted/);
    expect(again.log.slice(-2)).toEqual(["kill", "down tb"]);
    expect(again.log).not.toContain("close");
  });
});
