/**
 * The cluster scenario end to end: netns hosts up, cluster booted, an NPB kernel across every VM
 * with global checkpoints each interval, the whole cluster SIGKILLed mid-run and restored from
 * the last committed epoch, the run finished and verified, everything torn down.
 */

import { availableParallelism } from "node:os";
import type { EpochMetrics } from "@vpc/cluster";
import {
  Cluster,
  type ClusterConfig,
  clusterVms,
  DONE,
  OUT,
  oversubscription,
  runProgress,
  runVerdict,
  STARTED,
  workloadCommand,
} from "@vpc/cluster";
import type { Logger } from "@vpc/controller";
import { testbedHostSpecs } from "./config-hosts.js";
import { TestbedError } from "./errors.js";
import { clusterHosts, testbedDown, testbedLeftovers, testbedUp } from "./hosts.js";

export interface ClusterDemoOptions {
  readonly config: ClusterConfig;
  readonly image?: string;
  readonly logger?: Logger;
  readonly onProgress?: (line: string) => void;
  /** Committed epochs to wait for before the kill (default 2: the full one and an incremental one). */
  readonly killAfterEpochs?: number;
  /** Whole run limit (default 600 000 ms; 3 600 000 with qemu hosts). */
  readonly timeoutMs?: number;
  /** Limit for the restored workload to print its done marker (default 150 000 ms; 1 200 000 with qemu hosts). */
  readonly finishTimeoutMs?: number;
  /** How long mpiexec may take to exit after the last result block is complete (default 30 000 ms). */
  readonly finalizeGraceMs?: number;
  /** Keep the testbed run directory (logs, stores, manifest) after tear-down. */
  readonly keepRunDir?: boolean;
}

export interface ClusterDemoResult {
  readonly verified: boolean;
  /** Every `Verification = ...` line of the run, in order. */
  readonly verificationLines: readonly string[];
  readonly runs: number;
  readonly killedAfterEpoch: number;
  /** The kill hit a running workload (started, not yet finished): otherwise the restore proves nothing. */
  readonly killedMidRun: boolean;
  /**
   * Every result block was printed (and is judged by `verified`), but mpiexec had not exited
   * `finalizeGraceMs` later: the MPI_Finalize hang of MPICH 4.0.2 ch4:ucx, not a checkpoint fault.
   */
  readonly finalizeHang: boolean;
  readonly restoredEpoch: number;
  readonly restoreMs: number;
  readonly replayedFrames: number;
  readonly epochs: readonly EpochMetrics[];
  readonly abortedEpochs: number;
  readonly wallMs: number;
  /** What was still there after tear-down (must be empty). */
  readonly leftovers: readonly string[];
  readonly runDir: string;
}

export async function runClusterDemo(o: ClusterDemoOptions): Promise<ClusterDemoResult> {
  const t0 = performance.now();
  const say = (l: string): void => o.onProgress?.(l);
  const { config } = o;
  // L2 guests of qemu hosts run TCG inside TCG, an order of magnitude slower (docs/nested.md).
  const nested = config.hosts.some((h) => h.kind === "qemu");
  const runLimitMs = o.timeoutMs ?? (nested ? 3_600_000 : 600_000);
  const finishLimitMs = o.finishTimeoutMs ?? (nested ? 1_200_000 : 150_000);
  // One command in a guest: a shell start in an L2 takes seconds, more on a busy machine.
  const execMs = nested ? 180_000 : 30_000;
  const deadline = Date.now() + runLimitMs;
  const kinds = [...new Set(config.hosts.map((h) => h.kind))].join("/");
  say(`testbed: ${config.hosts.length} ${kinds} hosts on ${config.fabric.prefix}`);
  const testbed = await testbedUp({
    hosts: testbedHostSpecs(config),
    bridgeIp: config.fabric.bridgeIp,
    prefixLength: config.fabric.prefixLength,
  });
  let cluster: Cluster | undefined;
  try {
    const common = {
      config,
      ...clusterHosts(testbed),
      // A hung boot or restore must not outlive the run limit.
      bootTimeoutMs: Math.min(nested ? 1_200_000 : 300_000, runLimitMs),
      ...(o.image === undefined ? {} : { image: o.image }),
      ...(o.logger === undefined ? {} : { logger: o.logger }),
      ...(o.onProgress === undefined ? {} : { onProgress: o.onProgress }),
    };
    cluster = await Cluster.start(common);
    const first = clusterVms(config)[0]!.name;
    const show = (m: EpochMetrics | Error): void =>
      say(
        m instanceof Error
          ? `epoch aborted: ${m.message}`
          : `epoch ${m.epoch}: VC downtime ${m.vcDowntimeMs.toFixed(1)} ms, held ${m.heldFrames}, logged ${m.loggedFrames}, ${(m.checkpointBytes / 1e6).toFixed(1)} MB`,
      );
    say(
      `workload: ${config.workload.kernel.toUpperCase()}.${config.workload.class} -n ${config.workload.np} ×${config.workload.repeat}`,
    );
    const crowded = oversubscription(config, config.workload.np, availableParallelism());
    if (crowded !== undefined) say(`warning: ${crowded}`);
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    const remaining = (what: string): number => {
      const left = deadline - Date.now();
      if (left <= 0) throw new TestbedError("TESTBED_STATE", `${what}: run limit reached`);
      return left;
    };
    const output = async (): Promise<string> =>
      (
        await cluster!.exec(
          first,
          `cat ${OUT} 2>/dev/null || true`,
          Math.min(execMs, remaining("reading the workload output")),
        )
      ).stdout;
    // The full first epoch is the slow one: take it before the workload starts, so that the kill
    // lands early in the run, after an incremental epoch of the running workload.
    cluster.startCheckpoints(show);
    while ((await cluster.committedEpochs()).length < 1) {
      remaining("waiting for the first committed epoch");
      await sleep(250);
    }
    await cluster.exec(first, workloadCommand(config), execMs);
    let out0 = "";
    while (!STARTED.test(out0) && !out0.includes(DONE)) {
      await sleep(500);
      out0 = await output();
    }
    const startedAt = (await cluster.committedEpochs()).length;
    const want = Math.max(o.killAfterEpochs ?? 2, startedAt + 1);
    while ((await cluster.committedEpochs()).length < want) {
      remaining(`waiting for ${want} committed epochs`);
      await sleep(250);
    }
    out0 = await output();
    const completedRuns = out0.match(/Benchmark Completed\./g)?.length ?? 0;
    const killedMidRun = STARTED.test(out0) && completedRuns < config.workload.repeat;
    if (!killedMidRun) say("warning: the workload finished before the kill; raise workload.repeat");
    const before = [...cluster.metrics];
    const abortedBefore = cluster.aborted.length;
    say("killing the whole cluster (SIGKILL every QEMU, drop every agent)");
    await cluster.kill();
    const killedAfterEpoch = (await cluster.committedEpochs()).at(-1)!;
    const restored = await Cluster.restore(common);
    cluster = restored.cluster;
    const { result } = restored;
    say(
      `restored epoch ${result.epoch} in ${(result.totalMs / 1000).toFixed(2)} s (replayed ${result.vms.reduce((a, v) => a + v.replayed, 0)} frames)`,
    );
    cluster.startCheckpoints(show);
    const finishBy = Math.min(deadline, Date.now() + finishLimitMs);
    const graceMs = o.finalizeGraceMs ?? 30_000;
    let out = "";
    let allPrintedAt: number | undefined;
    let finalizeHang = false;
    for (;;) {
      out = await output();
      // MPICH 4.0.2 (ch4:ucx) can hang in MPI_Finalize after the result is printed, with or
      // without checkpoints (docs/cluster.md "MPI finalize hang"): runProgress gives it a grace
      // period once every result block is complete, then reports the hang instead of waiting.
      const p = runProgress(out, config.workload.repeat, Date.now(), graceMs, allPrintedAt);
      allPrintedAt = p.allPrintedAt;
      if (p.finalizeHang) {
        finalizeHang = true;
        say(
          `warning: every result is printed but mpiexec did not exit within ${(graceMs / 1000).toFixed(0)} s: ` +
            "MPI_Finalize hang of MPICH 4.0.2 ch4:ucx (docs/cluster.md)",
        );
      }
      if (p.done) break;
      if (Date.now() > finishBy)
        throw new TestbedError(
          "TESTBED_STATE",
          `the restored workload did not finish within ${(finishLimitMs / 1000).toFixed(0)} s; output so far:\n${out}`,
        );
      await sleep(2000);
    }
    await cluster.stopCheckpoints();
    const {
      verified,
      verificationLines,
      results: blocks,
    } = runVerdict(out, config.workload.repeat, finalizeHang);
    const epochs = [...before, ...cluster.metrics];
    const aborted = abortedBefore + cluster.aborted.length;
    await cluster.close();
    cluster = undefined;
    if (!verified) say(`workload output:\n${out}`);
    return {
      verified,
      verificationLines,
      runs: blocks.length,
      killedAfterEpoch,
      killedMidRun,
      finalizeHang,
      restoredEpoch: result.epoch,
      restoreMs: result.totalMs,
      replayedFrames: result.vms.reduce((a, v) => a + v.replayed, 0),
      epochs,
      abortedEpochs: aborted,
      wallMs: performance.now() - t0,
      leftovers: [],
      runDir: testbed.runDir,
    };
  } finally {
    await cluster?.close().catch(() => undefined);
    await testbedDown(testbed.runDir, { keepRunDir: o.keepRunDir ?? false }).catch((e: unknown) =>
      say(`tear-down failed: ${(e as Error).message}`),
    );
    const left = await testbedLeftovers(testbed);
    if (left.length > 0) say(`left behind: ${left.join(", ")}`);
  }
}
