/**
 * Lazy restore of one VM's RAM (opt-in, `restoreVm({ lazy: true })`): the epoch chain is resolved
 * once into a lazy map, QEMU starts on an empty RAM file, and the dirty-log agent preloaded into it
 * fills each page from its verified store block on first touch while a background loader fills
 * the rest (packages/dirty-log README, "lazyLoad"). A monitor follows the load to its end: on a
 * checksum failure it kills QEMU — the VM must not run on RAM it cannot trust — and reports the
 * file and offset.
 */
import { join } from "node:path";
import { DirtyLogClient, type LazyStatus, writeLazyMap } from "@vpc/dirty-log";
import type { CheckpointStore } from "@vpc/storage";
import { CheckpointError } from "./errors.js";
import type { Logger } from "./logger.js";

/** What a lazy restore cost, from the agent's counters once every page is in. */
export interface LazyRestoreStats {
  /** Resolving the chain into the lazy map and writing it. */
  readonly mapMs: number;
  /** `lazyLoad` call until the last block was in. */
  readonly loadMs: number;
  /** MISSING faults taken (zero pages included) and the handler's total and longest time on them. */
  readonly faults: number;
  readonly zeroFaults: number;
  readonly faultStallMs: number;
  readonly faultMaxMs: number;
  readonly pagesByFault: number;
  /** Pages the background loader filled before anything touched them. */
  readonly pagesByLoader: number;
  readonly blocks: number;
  readonly bytesRead: number;
  /** Pages QEMU had written before the agent registered guest RAM (given their committed content). */
  readonly prefilled: number;
}

export interface LazyRam {
  /** For `Vm.restore({ lazyRam })`. */
  readonly fill: (ramPath: string, qemuPid: number) => Promise<void>;
  /**
   * Resolves once every page is in; rejects with a CheckpointError naming the store file and offset
   * if a block fails verification (QEMU is killed first), or if the agent is lost. Call after
   * `fill` succeeded.
   */
  readonly loaded: () => Promise<LazyRestoreStats>;
  /**
   * After the restore itself failed: the verification failure behind it (QEMU was killed for it),
   * if the load failed within `waitMs`; else undefined (the restore's own error stands).
   */
  readonly verificationFailure: (waitMs: number) => Promise<CheckpointError | undefined>;
}

const STATUS_WAIT_MS = 30_000;

/** Resolves the chain of `vmId` at `epoch` and returns the hook that lazily fills a new QEMU's RAM. */
export async function prepareLazyRam(o: {
  readonly store: CheckpointStore;
  readonly vmId: string;
  readonly epoch: number;
  readonly agentSocket: string;
  /** Directory for the lazy map; must exist until `fill` returned. */
  readonly scratch: string;
  readonly logger: Logger;
}): Promise<LazyRam> {
  const t0 = performance.now();
  const location = await o.store.locateRam(o.vmId, o.epoch);
  const mapPath = join(o.scratch, "lazy-map");
  await writeLazyMap(mapPath, location);
  const mapMs = performance.now() - t0;
  let monitor: Promise<LazyRestoreStats> | undefined;
  let failure: CheckpointError | undefined;
  /** Follows the load from `lazyLoad` to its end, so that a failure ends QEMU even mid-restore. */
  const follow = async (client: DirtyLogClient, qemu: number, t1: number): Promise<LazyRestoreStats> => {
    let st: LazyStatus;
    try {
      do st = await client.lazyStatus({ waitMs: STATUS_WAIT_MS });
      while (!st.done && !st.failed);
    } catch (cause) {
      throw new CheckpointError("lazy-restore", `lost the agent during the lazy load: ${messageOf(cause)}`, {
        vmId: o.vmId,
        cause,
      });
    } finally {
      await client.close().catch(() => undefined);
    }
    if (st.failed) {
      // Unverified pages are never served, so the guest is stuck on them: end it, say where.
      killQuietly(qemu);
      const path = location.files.find((f) => st.error?.message.includes(f));
      failure = new CheckpointError("lazy-restore", `${o.vmId}: ${st.error?.message ?? "lazy load failed"}`, {
        vmId: o.vmId,
        ...(path === undefined ? {} : { path }),
      });
      o.logger.log("error", "vm.lazy-failed", { vm: o.vmId, epoch: o.epoch, error: failure.message });
      throw failure;
    }
    const stats: LazyRestoreStats = {
      mapMs,
      loadMs: (st.doneNs - st.startNs) / 1e6,
      faults: st.faults,
      zeroFaults: st.zeroFaults,
      faultStallMs: st.faultNs / 1e6,
      faultMaxMs: st.faultMaxNs / 1e6,
      pagesByFault: st.pagesByFault,
      pagesByLoader: st.pagesByLoader,
      blocks: st.blocks,
      bytesRead: st.bytesRead,
      prefilled: st.prefilled,
    };
    o.logger.log("info", "vm.lazy-loaded", { vm: o.vmId, ...stats, sinceFillMs: performance.now() - t1 });
    return stats;
  };
  return {
    fill: async (ramPath, qemuPid) => {
      const client = await DirtyLogClient.connect(o.agentSocket, { timeoutMs: 10_000 });
      const t1 = performance.now();
      try {
        const r = await client.lazyLoad({ memPath: ramPath, mapPath });
        o.logger.log("info", "vm.lazy-load", { vm: o.vmId, epoch: o.epoch, ...r, mapMs });
      } catch (cause) {
        await client.close().catch(() => undefined);
        throw new CheckpointError("lazy-restore", `lazy load of ${o.vmId} failed: ${messageOf(cause)}`, {
          vmId: o.vmId,
          cause,
        });
      }
      monitor = follow(client, qemuPid, t1);
      // Awaited by loaded() or verificationFailure(); a caller may await neither.
      monitor.catch(() => undefined);
    },
    loaded: () =>
      monitor ??
      Promise.reject(new CheckpointError("lazy-restore", "loaded() before fill()", { vmId: o.vmId })),
    verificationFailure: async (waitMs) => {
      if (!monitor) return undefined;
      await Promise.race([monitor.catch(() => undefined), new Promise((r) => setTimeout(r, waitMs).unref())]);
      return failure;
    },
  };
}

function killQuietly(pid: number): void {
  try {
    if (pid > 0) process.kill(pid, "SIGKILL");
  } catch {
    // Already gone.
  }
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
