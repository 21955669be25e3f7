/**
 * The real cell executors, on the controller's engine API (`startVmWithAgent`, `createEngine`,
 * `CheckpointLoop`, `restoreVmWithAgent`) and NPB or vpc-dirtier in the guest image; vc-scale,
 * npb and restore cells with several VMs run on the virtual cluster (vc.ts, vc-restore.ts).
 * Cells no executor can run yet (several VMs in solo, sweep, interval, predictor) fail with
 * `NOT_AVAILABLE` (recorded, never a fake result).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type AgentVm,
  CheckpointLoop,
  type ClosableEngine,
  createEngine,
  type GuestImage,
  loadGuestImage,
  parseEngineSpec,
  restoreVmWithAgent,
  startVmWithAgent,
} from "@vpc/controller";
import { CheckpointStore } from "@vpc/storage";
import { EvaluationError, notAvailable } from "./errors.js";
import { type Cell, type ExperimentName, NO_CHECKPOINT } from "./format.js";
import {
  countVerified,
  finishRestoredWorkload,
  kernelCommand,
  restoreWorkloadCommand,
} from "./guest-workload.js";
import { recordQueue, toResultRecord } from "./records.js";
import type { CellContext, CellExecutor } from "./runner.js";
import { type RunStateEvent, runSweepCell } from "./sweep.js";
import { createVcExecutor, realVcDeps } from "./vc.js";
import { createVcRestoreExecutor } from "./vc-restore.js";

/** How long the restored workload has to complete a run and stop (CG/IS/EP class S take seconds). */
export const RESTORE_FINISH_MS = 180_000;

interface Live {
  readonly image: GuestImage;
  readonly work: string;
  readonly agentVm: AgentVm;
  readonly store: CheckpointStore | undefined;
  readonly engine: ClosableEngine | undefined;
}

/** The NPB kernel of the cell must be in the guest image. */
function needsNpbKernel(image: GuestImage, cell: Cell): void {
  if (!image.npb.includes(cell.kernel)) {
    throw new EvaluationError(
      "CONFIG",
      `the guest image has no NPB kernel "${cell.kernel}" (run make images)`,
    );
  }
}

/**
 * Boots one VM with the agent (and an engine + store unless `none`), runs `body`, cleans up
 * always. `needs` checks the image has the cell's workload before anything boots.
 */
async function withVm<T>(
  cell: Cell,
  ctx: CellContext,
  body: (live: Live) => Promise<T>,
  needs: (image: GuestImage, cell: Cell) => void = needsNpbKernel,
): Promise<T> {
  if (cell.vms !== 1 || cell.hosts !== 1)
    throw notAvailable(
      `${cell.experiment} with ${cell.vms} VMs on ${cell.hosts} hosts: only vc-scale, npb and restore run clusters`,
    );
  const image = await loadGuestImage();
  needs(image, cell);
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
      engine = createEngine(parseEngineSpec(cell.engine), { vm: agentVm.vm, store, agent: agentVm.agent });
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

/** solo, interval, predictor: the kernel runs `kernelRuns` times while the engine checkpoints. */
export const workloadExecutor: CellExecutor = (cell, ctx) =>
  withVm(cell, ctx, async ({ agentVm, engine }) => {
    const sink = recordQueue(ctx);
    const loop = engine
      ? new CheckpointLoop({
          vm: agentVm.vm,
          engine,
          intervalMs: cell.intervalMs,
          onRecord: (r) => sink.push(toResultRecord(r)),
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
    const sink = recordQueue(ctx);
    await agentVm.vm.run(restoreWorkloadCommand(cell), { timeoutMs: 30_000 });
    const loop = new CheckpointLoop({
      vm: agentVm.vm,
      engine,
      intervalMs: cell.intervalMs,
      maxCheckpoints: cell.chainLength,
      onRecord: (r) => sink.push(toResultRecord(r)),
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
      const verdict = await finishRestoredWorkload(
        {
          run: (command) => restored.vm.run(command, { timeoutMs: 30_000 }),
          sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
          now: () => performance.now(),
        },
        RESTORE_FINISH_MS,
      );
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
          `NPB not verified after the restore: ${verdict.detail}\n${verdict.output}`,
        );
    } finally {
      ctx.signal.removeEventListener("abort", onAbort);
      await restored.close();
    }
  });

/** sweep: vpc-dirtier in one VM under one engine (sweep.ts), on this VM and a CheckpointLoop. */
export const sweepExecutor: CellExecutor = (cell, ctx) =>
  withVm(
    cell,
    ctx,
    async ({ agentVm, engine }) => {
      if (!engine)
        throw new EvaluationError("CONFIG", "a sweep cell needs an engine (none has nothing to measure)");
      const { vm } = agentVm;
      await runSweepCell(
        cell,
        ctx,
        {
          run: (command) => vm.run(command, { timeoutMs: 60_000 }),
          recordRunState: () => {
            const listener = vm.qmp.events({ names: ["STOP", "RESUME"] });
            const events: RunStateEvent[] = [];
            const reading = (async () => {
              for await (const e of listener) events.push(e);
            })();
            return {
              stop: async () => {
                // Events QEMU sent before this call are delivered first: QMP is one ordered stream.
                await vm.qmp.queryStatus();
                listener.close();
                await reading;
                return events;
              },
            };
          },
          checkpoints: async (firstEpoch, count, onRecord) =>
            (
              await new CheckpointLoop({
                vm,
                engine,
                intervalMs: cell.intervalMs,
                firstEpoch,
                maxCheckpoints: count,
                onRecord,
              })
                .start()
                .finished()
            ).records,
        },
        { now: () => performance.now(), sleep: (ms) => new Promise((r) => setTimeout(r, ms)) },
      );
    },
    (image) => {
      if (!image.programs.includes("vpc-dirtier"))
        throw new EvaluationError("CONFIG", "the guest image has no vpc-dirtier (run make images)");
    },
  );

/** The executor of each experiment on this machine's real VMs. */
export function realExecutor(experiment: ExperimentName): CellExecutor {
  switch (experiment) {
    case "solo":
    case "interval":
    case "predictor":
      return workloadExecutor;
    case "sweep":
      return sweepExecutor;
    case "npb": {
      // One VM as in solo; several as a virtual cluster as in vc-scale.
      const vc = createVcExecutor(realVcDeps);
      return (cell, ctx) => (cell.vms > 1 ? vc(cell, ctx) : workloadExecutor(cell, ctx));
    }
    case "restore": {
      const vc = createVcRestoreExecutor(realVcDeps);
      return (cell, ctx) => (cell.vms > 1 ? vc(cell, ctx) : restoreExecutor(cell, ctx));
    }
    case "vc-scale":
      return createVcExecutor(realVcDeps);
  }
}
