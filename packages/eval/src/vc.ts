/**
 * The `vc-scale` executor: a virtual cluster of `cell.vms` VMs on `cell.hosts` netns hosts
 * (@vpc/controller `testbedUp` + `Cluster`), an NPB kernel across every VM with mpiexec, and a
 * global checkpoint every `cell.intervalMs`; one `vc-checkpoint` record per epoch and a `run`
 * record. Cells with engine `none` run the same workload without checkpoints (the run-time
 * baseline). The testbed is torn down in every case, also when the run is aborted.
 *
 * The cluster pieces are injected (`VcDeps`) so the cell logic is unit-tested with a fake cluster.
 */
import { execFile } from "node:child_process";
import { randomInt } from "node:crypto";
import { promisify } from "node:util";
import {
  Cluster,
  type ClusterConfig,
  type ClusterConfigInput,
  type ClusterRestoreResult,
  type EpochMetrics,
  validateClusterConfig,
} from "@vpc/cluster";
import { loadGuestImage, parseEngineSpec } from "@vpc/controller";
import {
  clusterHosts,
  fabricConflicts,
  type TestbedState,
  testbedDown,
  testbedLeftovers,
  testbedUp,
} from "@vpc/testbed";
import { EvaluationError } from "./errors.js";
import { type Cell, errorInfo, NO_CHECKPOINT, type ResultRecord } from "./format.js";
import type { CellContext, CellExecutor } from "./runner.js";

/** What the executor needs of a running cluster (a subset of @vpc/controller's `Cluster`). */
export interface VcCluster {
  checkpoint(): Promise<EpochMetrics>;
  startCheckpoints(onEpoch: (m: EpochMetrics | Error) => void): void;
  stopCheckpoints(): Promise<void>;
  exec(vmId: string, command: string, timeoutMs?: number): Promise<{ stdout: string }>;
  kill(): Promise<void>;
  close(): Promise<void>;
}

export interface VcDeps {
  /** Creates the hosts of `config`; the returned handle is given to `start` and `down`. */
  up(config: ClusterConfig): Promise<unknown>;
  start(config: ClusterConfig, testbed: unknown, progress: (line: string) => void): Promise<VcCluster>;
  /** Restarts the killed cluster of `config` on `testbed` from `epoch` (`Cluster.restore`). */
  restore(
    config: ClusterConfig,
    testbed: unknown,
    epoch: number,
    progress: (line: string) => void,
  ): Promise<{ cluster: VcCluster; result: ClusterRestoreResult }>;
  /** Removes everything `up` made; returns what is still left (empty when clean). */
  down(testbed: unknown): Promise<string[]>;
  /** Free fabric prefix for a new testbed. */
  fabricPrefix(): Promise<string>;
  sleep(ms: number): Promise<void>;
  now(): number;
}

export interface VcTimings {
  /** Between reads of the workload output (default 300 ms): the resolution of the wall time. */
  readonly pollMs: number;
  /** A kernel run must print its verification line within this (default 600 000 ms). */
  readonly runTimeoutMs: number;
  /** After the verification line, how long mpiexec may take to exit (default 10 000 ms). */
  readonly finalizeGraceMs: number;
}

const DEFAULT_TIMINGS: VcTimings = { pollMs: 300, runTimeoutMs: 600_000, finalizeGraceMs: 10_000 };

/**
 * The cluster description of a cell: `hosts` netns hosts, the VMs spread over them in blocks
 * (the first hosts take one more when they do not divide evenly), one MPI rank per VM.
 * `none` cells get `stop-copy` as a placeholder engine that is never called.
 */
export function vcClusterConfig(cell: Cell, fabricPrefix: string): ClusterConfig {
  if (cell.hosts < 1 || cell.vms < cell.hosts)
    throw new EvaluationError("CONFIG", `a cluster needs 1 ≤ hosts ≤ VMs, got ${cell.hosts} and ${cell.vms}`);
  const hosts: { name: string; vms: { name: string }[] }[] = [];
  let vm = 0;
  for (let h = 0; h < cell.hosts; h++) {
    const n = Math.floor(cell.vms / cell.hosts) + (h < cell.vms % cell.hosts ? 1 : 0);
    hosts.push({ name: `e${h + 1}`, vms: Array.from({ length: n }, () => ({ name: `evm${++vm}` })) });
  }
  const input: ClusterConfigInput = {
    name: "eval",
    fabricPrefix,
    // The data network lives inside the cluster's own switches, so a fixed prefix never clashes.
    dataPrefix: "192.168.79.0/24",
    intervalMs: Math.max(100, cell.intervalMs),
    epochTimeoutMs: 120_000,
    vm: { memMiB: cell.memMiB, cpus: 1 },
    hosts,
    workload: { kernel: cell.kernel, class: cell.cls, np: cell.vms, repeat: 1 },
  };
  try {
    return validateClusterConfig(
      input,
      parseEngineSpec(cell.engine === NO_CHECKPOINT ? "stop-copy" : cell.engine),
    );
  } catch (cause) {
    throw new EvaluationError("CONFIG", `cell cannot run as a cluster: ${(cause as Error).message}`, {
      cause,
    });
  }
}

/**
 * A /24 in 10.78.0.0/16 that no interface of this machine uses (other testbeds may be up).
 * `pick` chooses among the free ones (random by default, so parallel runs rarely collide).
 */
export function freeFabricPrefix(
  ipAddrOutput: string,
  pick: (n: number) => number = (n) => randomInt(n),
): string {
  const free: string[] = [];
  for (let i = 1; i < 255; i++) {
    const prefix = `10.78.${i}.0/24`;
    if (fabricConflicts(prefix, ipAddrOutput).length === 0) free.push(prefix);
  }
  if (free.length === 0) throw new EvaluationError("CONFIG", "no free fabric prefix in 10.78.0.0/16");
  return free[pick(free.length)]!;
}

export function vcCheckpointRecord(m: EpochMetrics, cell: Cell): ResultRecord {
  return {
    type: "vc-checkpoint",
    epoch: m.epoch,
    vms: cell.vms,
    hosts: cell.hosts,
    vcDowntimeMs: m.vcDowntimeMs,
    heldFrames: m.heldFrames,
    loggedFrames: m.loggedFrames,
    committed: true,
    full: m.full,
    pauseOffsetMs: m.pauseOffsetMs,
    soloDowntimeMs: m.soloDowntimeMs,
    steps: m.steps,
  };
}

export function epochFailureRecord(e: Error, cell: Cell): ResultRecord {
  const epoch = (e as { epoch?: unknown }).epoch;
  return {
    type: "checkpoint-failure",
    vmId: "cluster",
    epoch: typeof epoch === "number" ? epoch : -1,
    engine: cell.engine,
    stage: "global-epoch",
    error: errorInfo(e),
  };
}

const OUT = "/root/vpc-eval.out";
const PID = "/root/vpc-eval.pid";
const DONE = "VPC-EVAL-DONE";

/** One kernel run across every VM, detached so the exec returns at once; output stays in guest RAM. */
export function vcRunCommand(config: ClusterConfig, vmNames: readonly string[]): string {
  const w = config.workload;
  // UCX would otherwise pick eth0, the management NIC, whose address every guest shares.
  const mpi = `mpiexec -launcher ssh -iface eth1 -genv UCX_NET_DEVICES eth1 -hosts ${vmNames.join(",")} -n ${w.np} /opt/npb/bin/${w.kernel} ${w.class}`;
  return `cd /root && setsid sh -c 'echo $$ >${PID}; ${mpi}; echo ${DONE} rc=$?' >${OUT} 2>&1 </dev/null &`;
}

/** What a read of the run's output says. */
export function judgeOutput(out: string): {
  verification: "none" | "successful" | "failed";
  exited: boolean;
  rc: number | null;
} {
  const line = /Verification\s*=\s*(\S+)/.exec(out);
  const done = new RegExp(`${DONE} rc=(\\d+)`).exec(out);
  return {
    verification: line === null ? "none" : line[1] === "SUCCESSFUL" ? "successful" : "failed",
    exited: done !== null,
    rc: done === null ? null : Number(done[1]),
  };
}

class Aborted extends Error {}

/** A cell's live cluster: `cluster` is replaced by the restored one after a VC restore. */
export interface ClusterSession {
  readonly config: ClusterConfig;
  readonly testbed: unknown;
  cluster: VcCluster;
  /** Races a long await against the cell's abort, so an interrupt goes straight to clean-up. */
  step<T>(p: Promise<T>): Promise<T>;
}

/**
 * Brings up the testbed and the cluster of `cell`, runs `body`, and always tears down: the
 * cluster closed (killed when aborted), the testbed removed, also when the abort comes mid-boot.
 */
export async function withCluster(
  deps: VcDeps,
  cell: Cell,
  ctx: CellContext,
  body: (s: ClusterSession) => Promise<void>,
): Promise<void> {
  const config = vcClusterConfig(cell, await deps.fabricPrefix());
  let abortReject: (e: Error) => void = () => undefined;
  const aborted = new Promise<never>((_, reject) => {
    abortReject = reject;
  });
  aborted.catch(() => undefined);
  const onAbort = () => abortReject(new Aborted("interrupted"));
  if (ctx.signal.aborted) throw new Aborted("interrupted");
  ctx.signal.addEventListener("abort", onAbort);
  const checkAbort = (): void => {
    if (ctx.signal.aborted) throw new Aborted("interrupted");
  };
  const step = async <T>(p: Promise<T>): Promise<T> => {
    // If the abort wins the race, what `p` brings up later is killed by the tear-down.
    p.catch(() => undefined);
    checkAbort();
    const v = await Promise.race([p, aborted]);
    checkAbort();
    return v;
  };
  let testbed: unknown;
  let session: ClusterSession | undefined;
  try {
    ctx.progress(`testbed: ${cell.hosts} netns host(s) on ${config.fabric.prefix}`);
    // Not raced: `up` takes a second and cleans up after itself on failure, and the tear-down
    // needs its handle, so an abort is honoured once it returns.
    testbed = await deps.up(config);
    checkAbort();
    ctx.progress(`booting ${cell.vms} × ${cell.memMiB} MiB VM(s)`);
    const starting = deps.start(config, testbed, ctx.progress);
    // If the abort wins the race, the cluster that comes up later is killed by the tear-down.
    starting.catch(() => undefined);
    session = { config, testbed, cluster: await Promise.race([starting, aborted]), step };
    checkAbort();
    await body(session);
  } finally {
    ctx.signal.removeEventListener("abort", onAbort);
    if (session) {
      // Interrupted: no graceful shutdown, the tear-down kills what is left anyway.
      await (ctx.signal.aborted ? session.cluster.kill() : session.cluster.close()).catch(() => undefined);
    }
    if (testbed !== undefined) {
      const left = await deps.down(testbed);
      if (left.length > 0) ctx.progress(`left behind after tear-down: ${left.join(", ")}`);
    }
  }
}

/** The vc-scale cell, on injected cluster pieces. */
export function createVcExecutor(deps: VcDeps, timings: Partial<VcTimings> = {}): CellExecutor {
  const t = { ...DEFAULT_TIMINGS, ...timings };
  return (cell, ctx) =>
    withCluster(deps, cell, ctx, (s) => {
      const vmNames = s.config.hosts.flatMap((h) => h.vms.map((v) => v.name));
      return runWorkload(cell, ctx, s.cluster, s.config, vmNames, deps, t, s.step);
    });
}

async function runWorkload(
  cell: Cell,
  ctx: CellContext,
  cluster: VcCluster,
  config: ClusterConfig,
  vmNames: readonly string[],
  deps: VcDeps,
  t: VcTimings,
  step: <T>(p: Promise<T>) => Promise<T>,
): Promise<void> {
  const checkpointing = cell.engine !== NO_CHECKPOINT;
  let chain = Promise.resolve();
  const push = (r: ResultRecord): void => {
    chain = chain.then(() => ctx.record(r));
  };
  let committed = 0;
  let failed = 0;
  const onEpoch = (m: EpochMetrics | Error): void => {
    if (m instanceof Error) {
      failed++;
      push(epochFailureRecord(m, cell));
    } else {
      committed++;
      push(vcCheckpointRecord(m, cell));
    }
  };
  const first = vmNames[0]!;
  if (checkpointing) {
    // The full first epoch is a one-off: taken before the workload, like the cluster demo.
    ctx.progress("full first epoch");
    onEpoch(await step(cluster.checkpoint()));
    cluster.startCheckpoints(onEpoch);
  }
  let wallMs = 0;
  let verified = 0;
  let hangs = 0;
  try {
    for (let run = 1; run <= cell.kernelRuns; run++) {
      ctx.progress(
        `run ${run}/${cell.kernelRuns}: ${cell.kernel.toUpperCase()}.${cell.cls} -n ${cell.vms} under ${cell.engine}`,
      );
      const r = await oneRun(cluster, config, vmNames, first, deps, t, step);
      wallMs += r.wallMs;
      if (r.verification === "successful") verified++;
      if (r.finalizeHang) {
        hangs++;
        ctx.progress(
          `run ${run}: result printed, mpiexec did not exit within ${t.finalizeGraceMs} ms ` +
            "(MPICH 4.0.2 finalize hang, docs/cluster.md); its processes were killed",
        );
      }
      if (r.verification !== "successful") break;
    }
  } finally {
    // On an abort `step` gives up at once: the kill in the tear-down ends the loop.
    if (checkpointing) await step(cluster.stopCheckpoints());
  }
  await chain;
  await ctx.record({
    type: "run",
    wallMs,
    kernelRuns: cell.kernelRuns,
    verifiedRuns: verified,
    checkpoints: committed,
    failedCheckpoints: failed,
    finalizeHangs: hangs,
  });
  if (verified !== cell.kernelRuns)
    throw new EvaluationError(
      "CELL_FAILED",
      `NPB verification succeeded in ${verified} of ${cell.kernelRuns} runs across ${cell.vms} VMs`,
    );
}

async function oneRun(
  cluster: VcCluster,
  config: ClusterConfig,
  vmNames: readonly string[],
  first: string,
  deps: VcDeps,
  t: VcTimings,
  step: <T>(p: Promise<T>) => Promise<T>,
): Promise<{ wallMs: number; verification: "successful" | "failed"; finalizeHang: boolean }> {
  await step(cluster.exec(first, `rm -f ${OUT} ${PID}`, 30_000));
  const t0 = deps.now();
  await step(cluster.exec(first, vcRunCommand(config, vmNames), 30_000));
  let verifiedAt: number | undefined;
  let verification: "none" | "successful" | "failed" = "none";
  for (;;) {
    const out = (await step(cluster.exec(first, `cat ${OUT} 2>/dev/null || true`, 30_000))).stdout;
    const j = judgeOutput(out);
    const now = deps.now();
    if (j.verification !== "none" && verifiedAt === undefined) {
      verifiedAt = now;
      verification = j.verification;
    }
    if (j.exited) {
      if (verifiedAt === undefined)
        throw new EvaluationError("CELL_FAILED", `mpiexec exited (rc ${j.rc}) without a result:\n${out}`);
      return {
        wallMs: verifiedAt - t0,
        verification: verification as "successful" | "failed",
        finalizeHang: false,
      };
    }
    if (verifiedAt !== undefined && now - verifiedAt > t.finalizeGraceMs) {
      // Only MPI_Finalize is left (the verdict is printed): end the run's process group so the next run can start.
      await step(cluster.exec(first, `kill -9 -$(cat ${PID}) 2>/dev/null; true`, 30_000));
      return {
        wallMs: verifiedAt - t0,
        verification: verification as "successful" | "failed",
        finalizeHang: true,
      };
    }
    if (now - t0 > t.runTimeoutMs)
      throw new EvaluationError(
        "CELL_FAILED",
        `no NPB result within ${(t.runTimeoutMs / 1000).toFixed(0)} s; output so far:\n${out}`,
      );
    await step(deps.sleep(t.pollMs));
  }
}

const exec = promisify(execFile);

/** The real cluster pieces: netns hosts on this machine (needs root, dropbear, `make images`). */
export const realVcDeps: VcDeps = {
  up: async (config) => {
    const image = await loadGuestImage();
    if (!image.npb.includes(config.workload.kernel))
      throw new EvaluationError(
        "CONFIG",
        `the guest image has no NPB kernel "${config.workload.kernel}" (run make images)`,
      );
    return testbedUp({
      hosts: config.hosts.map((h) => ({ name: h.name, ip: h.fabricIp })),
      bridgeIp: config.fabric.bridgeIp,
      prefixLength: config.fabric.prefixLength,
    });
  },
  start: (config, testbed, progress) =>
    Cluster.start({
      config,
      ...clusterHosts(testbed as TestbedState),
      onProgress: progress,
      bootTimeoutMs: 300_000,
    }),
  restore: (config, testbed, epoch, progress) =>
    Cluster.restore({
      config,
      ...clusterHosts(testbed as TestbedState),
      epoch,
      onProgress: progress,
      bootTimeoutMs: 300_000,
    }),
  down: async (testbed) => {
    const state = testbed as TestbedState;
    await testbedDown(state.runDir);
    return testbedLeftovers(state);
  },
  fabricPrefix: async () => freeFabricPrefix((await exec("ip", ["-o", "-4", "addr", "show"])).stdout),
  sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
  now: () => performance.now(),
};
