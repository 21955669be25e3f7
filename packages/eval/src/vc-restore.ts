/**
 * The `restore` cell with several VMs: a virtual-cluster restore. The cell's VMs run on
 * `cell.hosts` netns hosts (withCluster, as vc-scale), each VM loops the NPB kernel on its own
 * (one rank per VM: the guest's MPICH 4.0.2 often hangs in MPI_Finalize across VMs, and an
 * across-VM run could not be judged per VM), `chainLength` global epochs are taken at the cell's
 * interval, the whole cluster is killed, `Cluster.restore` of the last epoch is timed, and every
 * VM's restored loop must complete a run with NPB's verification SUCCESSFUL.
 */
import { EvaluationError } from "./errors.js";
import { type Cell, NO_CHECKPOINT } from "./format.js";
import { finishRestoredWorkload, restoreWorkloadCommand } from "./guest-workload.js";
import type { CellContext, CellExecutor } from "./runner.js";
import {
  type ClusterSession,
  epochFailureRecord,
  type VcDeps,
  vcCheckpointRecord,
  withCluster,
} from "./vc.js";

export interface VcRestoreTimings {
  /** How long each restored VM's workload has to complete a run and stop (default 180 000 ms). */
  readonly finishMs: number;
  /** Between reads of a restored VM's workload output (default 500 ms). */
  readonly pollMs: number;
}

const DEFAULT_TIMINGS: VcRestoreTimings = { finishMs: 180_000, pollMs: 500 };

/** The VC restore cell, on injected cluster pieces. */
export function createVcRestoreExecutor(deps: VcDeps, timings: Partial<VcRestoreTimings> = {}): CellExecutor {
  const t = { ...DEFAULT_TIMINGS, ...timings };
  return async (cell, ctx) => {
    const chainLength = cell.chainLength;
    if (cell.engine === NO_CHECKPOINT || chainLength === null || chainLength < 1)
      throw new EvaluationError("CONFIG", "a restore cell needs an engine and a chain length ≥ 1");
    return withCluster(deps, cell, ctx, (s) => restoreCell(cell, chainLength, ctx, s, deps, t));
  };
}

async function restoreCell(
  cell: Cell,
  chainLength: number,
  ctx: CellContext,
  s: ClusterSession,
  deps: VcDeps,
  t: VcRestoreTimings,
): Promise<void> {
  const vmNames = s.config.hosts.flatMap((h) => h.vms.map((v) => v.name));
  ctx.progress(
    `starting ${cell.kernel.toUpperCase()}.${cell.cls} (one rank) in each of ${vmNames.length} VMs`,
  );
  const killed = s.cluster;
  await s.step(Promise.all(vmNames.map((vm) => killed.exec(vm, restoreWorkloadCommand(cell), 30_000))));
  ctx.progress(`taking ${chainLength} global checkpoint(s) at ${cell.intervalMs} ms`);
  let last = -1;
  for (let i = 0; i < chainLength; i++) {
    const t0 = deps.now();
    const m = await s.step(killed.checkpoint()).catch(async (e: unknown) => {
      if (ctx.signal.aborted) throw e;
      await ctx.record(epochFailureRecord(e as Error, cell));
      throw new EvaluationError(
        "CELL_FAILED",
        `global epoch ${i + 1} of ${chainLength} aborted; nothing comparable to restore: ${(e as Error).message}`,
        { cause: e },
      );
    });
    await ctx.record(vcCheckpointRecord(m, cell));
    last = m.epoch;
    const wait = cell.intervalMs - (deps.now() - t0);
    if (i < chainLength - 1 && wait > 0) await s.step(deps.sleep(wait));
  }
  ctx.progress("killing the whole cluster (every QEMU SIGKILLed, every agent dropped)");
  await s.step(killed.kill());
  ctx.progress(`restoring epoch ${last} on ${cell.hosts} host(s)`);
  const { cluster, result } = await s.step(deps.restore(s.config, s.testbed, last, ctx.progress));
  s.cluster = cluster;
  ctx.progress(
    `restored in ${(result.totalMs / 1000).toFixed(2)} s (${result.vms.map((v) => `${v.vmId} ${(v.ms / 1000).toFixed(2)} s`).join(", ")}); letting each workload finish its run`,
  );
  const verdicts = await s.step(
    Promise.all(
      vmNames.map(async (vm) => ({
        vm,
        ...(await finishRestoredWorkload(
          {
            run: async (command) => (await cluster.exec(vm, command, 30_000)).stdout,
            sleep: deps.sleep,
            now: deps.now,
          },
          t.finishMs,
          t.pollMs,
        )),
      })),
    ),
  );
  const verified = verdicts.every((v) => v.verified);
  await ctx.record({
    type: "restore",
    epoch: result.epoch,
    chainLength,
    memMiB: cell.memMiB,
    vms: cell.vms,
    hosts: cell.hosts,
    restoreMs: result.totalMs,
    // The split into RAM and QEMU start is per VM inside the agents; `perVm` has each VM's total.
    ramMs: null,
    vmMs: null,
    verified,
    verifiedRuns: verdicts.reduce((n, v) => n + v.verifiedRuns, 0),
    perVm: result.vms.map((v) => ({ vmId: v.vmId, ms: v.ms, replayed: v.replayed })),
  });
  ctx.progress(`NPB after the restore: ${verdicts.map((v) => `${v.vm}: ${v.detail}`).join("; ")}`);
  if (!verified) {
    const bad = verdicts.filter((v) => !v.verified);
    throw new EvaluationError(
      "CELL_FAILED",
      `NPB not verified after the VC restore on ${bad.map((v) => v.vm).join(", ")}:\n${bad
        .map((v) => `${v.vm}: ${v.detail}\n${v.output}`)
        .join("\n")}`,
    );
  }
}
