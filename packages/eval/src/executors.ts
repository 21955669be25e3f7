/**
 * The real cell executors, on the controller's engine API (`startVmWithAgent`, `createEngine`,
 * `CheckpointLoop`, `restoreVmWithAgent`) and NPB in the guest image; vc-scale runs on the
 * virtual cluster (vc.ts). Cells no executor can run yet (several VMs outside vc-scale) fail with
 * `NOT_AVAILABLE` (recorded, never a fake result).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type AgentVm,
  CheckpointLoop,
  type ClosableEngine,
  type CheckpointRecord as ControllerRecord,
  createEngine,
  type GuestImage,
  loadGuestImage,
  restoreVmWithAgent,
  startVmWithAgent,
} from "@vpc/controller";
import { CheckpointStore } from "@vpc/storage";
import { EvaluationError, notAvailable } from "./errors.js";
import { type Cell, type ExperimentName, NO_CHECKPOINT, type ResultRecord } from "./format.js";
import type { CellContext, CellExecutor } from "./runner.js";
import { createVcExecutor, realVcDeps } from "./vc.js";

/** Maps one controller checkpoint record to a results record (ARCHITECTURE §2 names kept). */
export function toResultRecord(r: ControllerRecord): ResultRecord {
  if (!r.ok) {
    return {
      type: "checkpoint-failure",
      vmId: r.vmId,
      epoch: r.epoch,
      engine: r.engine,
      stage: r.stage,
      error: { name: r.error.name, code: r.error.code ?? null, message: r.error.message },
    };
  }
  const p = r.prediction;
  return {
    type: "checkpoint",
    vmId: r.vmId,
    epoch: r.epoch,
    engine: r.engine,
    full: r.full,
    pauseMs: r.pauseMs,
    stallMs: r.stallMs,
    soloDowntimeMs: r.soloDowntimeMs,
    memoryOverhead: r.memoryOverhead,
    checkpointBytes: r.checkpointBytes,
    durableMs: r.durableMs,
    pagesDirty: r.pagesDirty,
    pagesCopiedInPause: r.pagesCopiedInPause,
    pagesProtected: r.pagesProtected,
    pagesCowCopied: r.pagesCowCopied,
    cowFaults: r.cowFaults,
    precision: p?.precision ?? null,
    recall: p?.recall ?? null,
    predicted: p?.predicted ?? null,
    hits: p?.hits ?? null,
    written: p?.written ?? null,
    predictionApproximate: p?.approximate ?? null,
  };
}

/** How long the restored workload has to complete a run and stop (CG/IS/EP class S take seconds). */
const RESTORE_FINISH_MS = 180_000;

/** Kernel and class go into a shell command line: only NPB's own names pass. */
function checkKernel(cell: Pick<Cell, "kernel" | "cls">): void {
  if (!/^[a-z]+$/.test(cell.kernel) || !/^[A-Z]$/.test(cell.cls)) {
    throw new EvaluationError("CONFIG", `bad NPB kernel/class: ${cell.kernel} ${cell.cls}`);
  }
}

/** The guest command: the kernel `runs` times back to back, stopping at the first failure. */
export function kernelCommand(cell: Pick<Cell, "kernel" | "cls" | "kernelRuns">): string {
  checkKernel(cell);
  return `cd /tmp && for i in $(seq ${cell.kernelRuns}); do mpiexec -n 1 /opt/npb/bin/${cell.kernel} ${cell.cls} || exit 1; done 2>&1`;
}

export function countVerified(stdout: string): number {
  return (stdout.match(/Verification\s*=\s*SUCCESSFUL/g) ?? []).length;
}

interface Live {
  readonly image: GuestImage;
  readonly work: string;
  readonly agentVm: AgentVm;
  readonly store: CheckpointStore | undefined;
  readonly engine: ClosableEngine | undefined;
}

/** Boots one VM with the agent (and an engine + store unless `none`), runs `body`, cleans up always. */
async function withVm<T>(cell: Cell, ctx: CellContext, body: (live: Live) => Promise<T>): Promise<T> {
  if (cell.vms !== 1 || cell.hosts !== 1)
    throw notAvailable(
      `${cell.experiment} with ${cell.vms} VMs on ${cell.hosts} hosts: only vc-scale runs clusters ` +
        "(a VC restore cell would use Cluster.kill + Cluster.restore)",
    );
  const image = await loadGuestImage();
  if (!image.npb.includes(cell.kernel)) {
    throw new EvaluationError(
      "CONFIG",
      `the guest image has no NPB kernel "${cell.kernel}" (run make images)`,
    );
  }
  const work = await mkdtemp(join(tmpdir(), "vpc-eval-"));
  let agentVm: AgentVm | undefined;
  let store: CheckpointStore | undefined;
  let engine: ClosableEngine | undefined;
  const onAbort = () => void agentVm?.vm.kill().catch(() => undefined);
  ctx.signal.addEventListener("abort", onAbort);
  try {
    ctx.progress(`booting a ${cell.memMiB} MiB guest`);
    agentVm = await startVmWithAgent(
      { name: "eval0", image, memMiB: cell.memMiB },
      cell.mode === null ? {} : { mode: cell.mode },
    );
    if (cell.engine !== NO_CHECKPOINT) {
      store = await CheckpointStore.open(join(work, "store"), { create: true });
      engine = createEngine(cell.engine, { vm: agentVm.vm, store, agent: agentVm.agent });
    }
    return await body({ image, work, agentVm, store, engine });
  } finally {
    ctx.signal.removeEventListener("abort", onAbort);
    await engine?.close().catch(() => undefined);
    await agentVm?.close().catch(() => undefined);
    await store?.close().catch(() => undefined);
    await rm(work, { recursive: true, force: true });
  }
}

/** Appends records in order while the loop runs; the first append error is kept and rethrown. */
function recordSink(ctx: CellContext): { push(r: ControllerRecord): void; flush(): Promise<void> } {
  let chain = Promise.resolve();
  return {
    push: (r) => {
      chain = chain.then(() => ctx.record(toResultRecord(r)));
    },
    flush: () => chain,
  };
}

/** solo, interval, predictor: the kernel runs `kernelRuns` times while the engine checkpoints. */
export const workloadExecutor: CellExecutor = (cell, ctx) =>
  withVm(cell, ctx, async ({ agentVm, engine }) => {
    const sink = recordSink(ctx);
    const loop = engine
      ? new CheckpointLoop({
          vm: agentVm.vm,
          engine,
          intervalMs: cell.intervalMs,
          onRecord: (r) => sink.push(r),
        }).start()
      : undefined;
    ctx.progress(`running ${cell.kernel.toUpperCase()}.${cell.cls} ×${cell.kernelRuns} under ${cell.engine}`);
    let out: string;
    const t0 = performance.now();
    try {
      out = await agentVm.vm.run(kernelCommand(cell), { timeoutMs: 3_600_000 });
    } finally {
      await loop?.stop();
    }
    const wallMs = performance.now() - t0;
    await sink.flush();
    const records = loop?.records ?? [];
    const verified = countVerified(out);
    await ctx.record({
      type: "run",
      wallMs,
      kernelRuns: cell.kernelRuns,
      verifiedRuns: verified,
      checkpoints: records.filter((r) => r.ok).length,
      failedCheckpoints: records.filter((r) => !r.ok).length,
    });
    if (verified !== cell.kernelRuns) {
      throw new EvaluationError(
        "CELL_FAILED",
        `NPB verification succeeded in ${verified} of ${cell.kernelRuns} runs`,
      );
    }
  });

const RESTORE_OUT = "/root/vpc-eval-restore.out";
const RESTORE_STOP = "/root/vpc-eval-stop";
const RESTORE_DONE = "VPC-EVAL-RESTORE-DONE";

/**
 * The restore cell's workload: the kernel back to back until the stop file appears, detached from
 * the SSH session (which a restore breaks) with its output in guest RAM, so both roll back with
 * the restore and the run cut by the kill goes on in the restored VM.
 */
export function restoreWorkloadCommand(cell: Pick<Cell, "kernel" | "cls">): string {
  checkKernel(cell);
  return (
    `rm -f ${RESTORE_STOP}; cd /tmp && setsid sh -c 'while [ ! -e ${RESTORE_STOP} ]; do mpiexec -n 1 ` +
    `/opt/npb/bin/${cell.kernel} ${cell.cls} || break; done; echo ${RESTORE_DONE}' >${RESTORE_OUT} 2>&1 </dev/null &`
  );
}

/**
 * The verdict on the workload after a restore: `before` is its output read right after the
 * restore (the state of the checkpoint), `after` once it stopped. Verified when every result
 * is SUCCESSFUL and at least one run completed in the restored VM.
 */
export function restoreVerdict(
  before: string,
  after: string,
): { verified: boolean; verifiedRuns: number; detail: string } {
  const results = (s: string) => (s.match(/Verification\s*=\s*\S+/g) ?? []).length;
  const total = results(after);
  const ok = countVerified(after);
  const sinceRestore = total - results(before);
  const finished = after.includes(RESTORE_DONE);
  const verified = finished && sinceRestore >= 1 && ok === total;
  return {
    verified,
    verifiedRuns: ok,
    detail: `${ok} of ${total} results SUCCESSFUL, ${sinceRestore} completed after the restore${finished ? "" : ", workload did not stop"}`,
  };
}

/**
 * restore: takes `chainLength` checkpoints (a full base + increments) while the kernel runs,
 * kills QEMU, times `restoreVmWithAgent` of the last committed epoch until SSH answers, then lets
 * the restored workload finish its run and checks NPB's verification.
 */
export const restoreExecutor: CellExecutor = (cell, ctx) =>
  withVm(cell, ctx, async ({ image, agentVm, engine, store }) => {
    if (!engine || !store || cell.chainLength === null) {
      throw new EvaluationError("CONFIG", "a restore cell needs an engine and a chain length");
    }
    const sink = recordSink(ctx);
    await agentVm.vm.run(restoreWorkloadCommand(cell), { timeoutMs: 30_000 });
    const loop = new CheckpointLoop({
      vm: agentVm.vm,
      engine,
      intervalMs: cell.intervalMs,
      maxCheckpoints: cell.chainLength,
      onRecord: (r) => sink.push(r),
    }).start();
    ctx.progress(
      `taking ${cell.chainLength} checkpoint(s) while ${cell.kernel.toUpperCase()}.${cell.cls} runs`,
    );
    const { lastCommitted, records } = await loop.finished();
    await sink.flush();
    await agentVm.vm.kill();
    const committed = records.filter((r) => r.ok).length;
    if (lastCommitted === undefined || committed !== cell.chainLength) {
      throw new EvaluationError(
        "CELL_FAILED",
        `${committed} of ${cell.chainLength} checkpoints committed; nothing comparable to restore`,
      );
    }
    ctx.progress(`restoring epoch ${lastCommitted}`);
    const t0 = performance.now();
    const restored = await restoreVmWithAgent({ store, vmId: agentVm.vm.name, epoch: lastCommitted, image });
    const restoreMs = performance.now() - t0;
    const onAbort = () => void restored.vm.kill().catch(() => undefined);
    ctx.signal.addEventListener("abort", onAbort);
    try {
      ctx.progress("restored; letting the workload finish its run");
      const read = () => restored.vm.run(`cat ${RESTORE_OUT} 2>/dev/null || true`, { timeoutMs: 30_000 });
      const before = await read();
      const results = (s: string) => (s.match(/Verification\s*=/g) ?? []).length;
      const deadline = performance.now() + RESTORE_FINISH_MS;
      let after = before;
      // One run completes in the restored VM (the one the checkpoint cut, if it cut one), then stop.
      while (results(after) <= results(before) && performance.now() < deadline) {
        await new Promise((r) => setTimeout(r, 500));
        after = await read();
      }
      await restored.vm.run(`touch ${RESTORE_STOP}`, { timeoutMs: 30_000 });
      while (!after.includes(RESTORE_DONE) && performance.now() < deadline) {
        await new Promise((r) => setTimeout(r, 500));
        after = await read();
      }
      const verdict = restoreVerdict(before, after);
      await ctx.record({
        type: "restore",
        epoch: lastCommitted,
        chainLength: cell.chainLength,
        memMiB: cell.memMiB,
        vms: 1,
        restoreMs,
        ramMs: restored.restored.timings.ramMs,
        vmMs: restored.restored.timings.vmMs,
        verified: verdict.verified,
        verifiedRuns: verdict.verifiedRuns,
      });
      ctx.progress(`NPB after the restore: ${verdict.detail}`);
      if (!verdict.verified)
        throw new EvaluationError(
          "CELL_FAILED",
          `NPB not verified after the restore: ${verdict.detail}\n${after}`,
        );
    } finally {
      ctx.signal.removeEventListener("abort", onAbort);
      await restored.close();
    }
  });

/** The executor of each experiment on this machine's real VMs. */
export function realExecutor(experiment: ExperimentName): CellExecutor {
  switch (experiment) {
    case "solo":
    case "interval":
    case "predictor":
      return workloadExecutor;
    case "restore":
      return restoreExecutor;
    case "vc-scale":
      return createVcExecutor(realVcDeps);
  }
}
