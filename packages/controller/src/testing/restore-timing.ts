/**
 * Helpers shared by the lazy-restore integration test and the restore benchmark: vpc-memcheck's
 * status (the guest image's program that verifies its own memory; its step counter is the guest-side
 * heartbeat) and a restore timed to guest progress. Not part of the package's API.
 */
import { open } from "node:fs/promises";
import { type AgentDir, agentLibraryPath, createAgentDir } from "@vpc/dirty-log";
import type { CheckpointStore } from "@vpc/storage";
import type { GuestImage } from "../guest-image.js";
import { type RestoredVm, restoreVm } from "../restore.js";
import type { Vm } from "../vm.js";

export interface Memcheck {
  readonly steps: number;
  readonly verifies: number;
  readonly failures: number;
  readonly nonce: string;
}

export async function memcheck(vm: Vm): Promise<Memcheck> {
  const line = await vm.run("cat /run/vpc-memcheck");
  const m = /steps=(\d+) verifies=(\d+) failures=(\d+) nonce=([0-9a-f]+)/.exec(line);
  if (!m) throw new Error(`bad memcheck status: ${line}`);
  return { steps: Number(m[1]), verifies: Number(m[2]), failures: Number(m[3]), nonce: m[4]! };
}

/** Polls `f` until `ok` holds (a throwing `f` counts as not yet) or `ms` pass. */
export async function waitFor<T>(f: () => Promise<T>, ok: (v: T) => boolean, ms: number): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await f().catch(() => undefined);
    if (v !== undefined && ok(v)) return v;
    if (Date.now() > until) throw new Error(`condition not met within ${ms} ms (last: ${JSON.stringify(v)})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Pages (4 KiB) in which two equally long files differ. */
export async function differingPages(a: string, b: string): Promise<number> {
  const [fa, fb] = [await open(a, "r"), await open(b, "r")];
  try {
    const chunk = 4 << 20;
    const [ba, bb] = [Buffer.alloc(chunk), Buffer.alloc(chunk)];
    let n = 0;
    for (let pos = 0; ; pos += chunk) {
      const [ra, rb] = [await fa.read(ba, 0, chunk, pos), await fb.read(bb, 0, chunk, pos)];
      if (ra.bytesRead !== rb.bytesRead) throw new Error("sizes differ");
      if (ra.bytesRead === 0) return n;
      for (let p = 0; p < ra.bytesRead; p += 4096) if (ba.compare(bb, p, p + 4096, p, p + 4096) !== 0) n++;
    }
  } finally {
    await fa.close();
    await fb.close();
  }
}

export interface TimedRestore {
  readonly restored: RestoredVm;
  /** The agent preloaded into the restored QEMU; remove it after the VM. */
  readonly agentDir: AgentDir;
  /** Restore request until the guest answered (memcheck read over SSH). */
  readonly answeredMs: number;
  /** Restore request until memcheck's step counter had moved past that answer: guest progress. */
  readonly progressMs: number;
  /** Lazy: restore request until every page was in. */
  readonly allPagesInMs?: Promise<number>;
}

/** restoreVm with the agent preloaded, timed to guest progress (memcheck must be running in it). */
export async function restoreTimed(o: {
  readonly store: CheckpointStore;
  readonly vmId: string;
  readonly epoch: number;
  readonly image: GuestImage;
  readonly lazy: boolean;
}): Promise<TimedRestore> {
  const agentDir = await createAgentDir();
  try {
    const t0 = performance.now();
    const restored = await restoreVm({
      ...o,
      overrides: { preload: agentLibraryPath(), env: { VPC_DIRTY_LOG_SOCKET: agentDir.socketPath } },
    });
    const allPagesInMs = restored.lazy?.loaded.then(() => performance.now() - t0);
    allPagesInMs?.catch(() => undefined);
    try {
      const first = await memcheck(restored.vm);
      const answeredMs = performance.now() - t0;
      await waitFor(
        () => memcheck(restored.vm),
        (m) => m.steps > first.steps,
        30_000,
      );
      const progressMs = performance.now() - t0;
      return { restored, agentDir, answeredMs, progressMs, ...(allPagesInMs ? { allPagesInMs } : {}) };
    } catch (e) {
      await restored.vm.shutdown();
      throw e;
    }
  } catch (e) {
    await agentDir.remove();
    throw e;
  }
}

/** One row of the eager-vs-lazy table (numbers in ms unless named otherwise). */
export async function restoreRow(mode: string, m: TimedRestore): Promise<Record<string, number | string>> {
  const t = m.restored.timings;
  const row: Record<string, number | string> = {
    mode,
    "RAM/map ms": Math.round(t.ramMs),
    "QEMU running ms": Math.round(t.runningMs),
    "guest answered ms": Math.round(m.answeredMs),
    "guest progress ms": Math.round(m.progressMs),
  };
  const stats = await m.restored.lazy?.loaded;
  if (stats === undefined) return row;
  return {
    ...row,
    "all pages in ms": Math.round((await m.allPagesInMs) ?? 0),
    faults: stats.faults,
    "zero faults": stats.zeroFaults,
    "fault stall ms": Number(stats.faultStallMs.toFixed(1)),
    "pages by fault": stats.pagesByFault,
    "pages by loader": stats.pagesByLoader,
    prefilled: stats.prefilled,
  };
}
