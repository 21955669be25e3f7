import { copyFile, mkdtemp, open, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type AgentDir, agentLibraryPath, createAgentDir, DirtyLogClient } from "@vpc/dirty-log";
import { CheckpointStore } from "@vpc/storage";
import { afterEach, describe, expect, it } from "vitest";
import { type AgentVm, startVmWithAgent } from "./engines/agent-vm.js";
import { createEngine } from "./engines/index.js";
import { loadGuestImage } from "./guest-image.js";
import { type RestoredVm, restoreVm } from "./restore.js";
import type { Vm } from "./vm.js";

// Real QEMU (TCG) and vpc-memcheck from the guest image (`make guest`): a VM is checkpointed
// (cow engine, a full epoch and an increment), killed, then restored eagerly and lazily from the
// same epoch, one after the other; both times memcheck must go on clean. Prints the two restores
// side by side (no timing asserts). After the lazy one, two more checkpoints must equal a copy of
// RAM taken in their pauses, byte for byte.

interface Memcheck {
  steps: number;
  verifies: number;
  failures: number;
  nonce: string;
}

async function memcheck(vm: Vm): Promise<Memcheck> {
  const line = await vm.run("cat /run/vpc-memcheck");
  const m = /steps=(\d+) verifies=(\d+) failures=(\d+) nonce=([0-9a-f]+)/.exec(line);
  if (!m) throw new Error(`bad memcheck status: ${line}`);
  return { steps: Number(m[1]), verifies: Number(m[2]), failures: Number(m[3]), nonce: m[4]! };
}

async function waitFor<T>(f: () => Promise<T>, ok: (v: T) => boolean, ms: number): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await f().catch(() => undefined);
    if (v !== undefined && ok(v)) return v;
    if (Date.now() > until) throw new Error(`condition not met within ${ms} ms (last: ${JSON.stringify(v)})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function differingPages(a: string, b: string): Promise<number> {
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

interface Measured {
  restored: RestoredVm;
  agentDir: AgentDir;
  /** Restore request until the guest answered over SSH, and until memcheck had advanced after that. */
  answeredMs: number;
  progressMs: number;
}

/** restoreVm with the agent preloaded (its socket in `agentDir`), timed to guest progress. */
async function restoreTimed(
  store: CheckpointStore,
  vmId: string,
  epoch: number,
  image: Awaited<ReturnType<typeof loadGuestImage>>,
  lazy: boolean,
): Promise<Measured> {
  const agentDir = await createAgentDir();
  try {
    const t0 = performance.now();
    const restored = await restoreVm({
      store,
      vmId,
      epoch,
      image,
      lazy,
      overrides: { preload: agentLibraryPath(), env: { VPC_DIRTY_LOG_SOCKET: agentDir.socketPath } },
    });
    const first = await memcheck(restored.vm);
    const answeredMs = performance.now() - t0;
    await waitFor(
      () => memcheck(restored.vm),
      (m) => m.steps > first.steps,
      30_000,
    );
    return { restored, agentDir, answeredMs, progressMs: performance.now() - t0 };
  } catch (e) {
    await agentDir.remove();
    throw e;
  }
}

describe("lazy restore (real QEMU, TCG)", () => {
  const cleanup: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const f of cleanup.reverse()) await f().catch(() => undefined);
    cleanup.length = 0;
  });

  it("memcheck continues clean after a lazy restore, checkpoints after it are exact; eager vs lazy printed", async () => {
    const image = await loadGuestImage();
    const work = await mkdtemp(join(tmpdir(), "vpc-lazy-restore-"));
    cleanup.push(() => rm(work, { recursive: true, force: true }));
    const live: AgentVm = await startVmWithAgent({ name: "lazy-r", image });
    cleanup.push(() => live.close());
    const { vm, agent } = live;
    await vm.run("vpc-memcheck -m 16 -w 64 -s 2000 -v 300 >/dev/null 2>/run/memcheck.err </dev/null &");
    const first = await waitFor(
      () => memcheck(vm),
      (m) => m.verifies >= 1,
      30_000,
    );
    const store = await CheckpointStore.open(join(work, "store"), { create: true, fsync: false });
    cleanup.push(() => store.close());
    const engine = createEngine("cow", { vm, store, agent } as Parameters<typeof createEngine>[1]);
    await engine.checkpoint(0);
    await new Promise((r) => setTimeout(r, 500));
    await engine.checkpoint(1);
    await engine.close();
    expect((await memcheck(vm)).failures).toBe(0);
    await vm.kill();
    await live.close();

    const rows: Record<string, number | string>[] = [];
    const row = (mode: string, m: Measured) => {
      const t = m.restored.timings;
      return {
        mode,
        "RAM/map ms": Math.round(t.ramMs),
        "QEMU running ms": Math.round(t.runningMs),
        "guest answered ms": Math.round(m.answeredMs),
        "guest progress ms": Math.round(m.progressMs),
      };
    };

    // Eager first, on the same epoch.
    const eager = await restoreTimed(store, vm.name, 1, image, false);
    cleanup.push(() => eager.agentDir.remove());
    cleanup.push(() => eager.restored.vm.shutdown());
    const eagerCheck = await memcheck(eager.restored.vm);
    expect(eagerCheck.nonce).toBe(first.nonce);
    expect(eagerCheck.failures).toBe(0);
    rows.push(row("eager", eager));
    await eager.restored.vm.shutdown();

    // Lazy.
    const lazy = await restoreTimed(store, vm.name, 1, image, true);
    cleanup.push(() => lazy.agentDir.remove());
    cleanup.push(() => lazy.restored.vm.shutdown());
    expect(lazy.restored.lazyFallback).toBeUndefined();
    const stats = await lazy.restored.lazy!.loaded;
    const loadedCheck = await memcheck(lazy.restored.vm);
    expect(loadedCheck.nonce).toBe(first.nonce);
    expect(stats.pagesByFault + stats.pagesByLoader + stats.prefilled).toBeGreaterThan(0);
    rows.push({
      ...row("lazy", lazy),
      "all pages in ms": Math.round(lazy.restored.timings.ramMs + stats.loadMs),
      faults: stats.faults,
      "zero faults": stats.zeroFaults,
      "fault stall ms": Number(stats.faultStallMs.toFixed(1)),
      "pages by fault": stats.pagesByFault,
      "pages by loader": stats.pagesByLoader,
      prefilled: stats.prefilled,
    });
    console.log("restore of one VM from the same epoch, eager then lazy (TCG, machine load varies):");
    console.table(rows);

    // Tracking attaches after the load; checkpoints taken now must hold exactly RAM at their pause.
    const client = await DirtyLogClient.connect(lazy.agentDir.socketPath, { timeoutMs: 10_000 });
    cleanup.push(() => client.close());
    const rv = lazy.restored.vm;
    await client.attach({
      memPath: rv.ramPath,
      mode: "async",
      stagingSlots: (rv.config.memMiB * 1024 * 1024) / 4096,
    });
    const atPause = (e: number) => join(work, `ram-at-pause-${e}`);
    const engine2 = createEngine("cow", {
      vm: rv,
      store,
      agent: client,
      onPaused: (e: number) => copyFile(rv.ramPath, atPause(e)),
    } as Parameters<typeof createEngine>[1]);
    await engine2.checkpoint(2);
    await new Promise((r) => setTimeout(r, 500));
    await engine2.checkpoint(3);
    await engine2.close();
    for (const e of [2, 3]) {
      await store.restoreRam(rv.name, e, join(work, "restored"));
      expect({ epoch: e, differing: await differingPages(join(work, "restored"), atPause(e)) }).toEqual({
        epoch: e,
        differing: 0,
      });
    }
    const later = await waitFor(
      () => memcheck(rv),
      (m) => m.verifies >= loadedCheck.verifies + 3,
      40_000,
    );
    expect(later.failures).toBe(0);
    expect(await rv.run("cat /run/memcheck.err")).toBe("");
  }, 300_000);
});
