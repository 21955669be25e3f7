import { copyFile, mkdtemp, open, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DirtyLogClient } from "@vpc/dirty-log";
import { CheckpointStore } from "@vpc/storage";
import { afterEach, describe, expect, it } from "vitest";
import { type AgentVm, startVmWithAgent } from "./engines/agent-vm.js";
import { createEngine, parseEngineSpec } from "./engines/index.js";
import { CheckpointError } from "./errors.js";
import { loadGuestImage } from "./guest-image.js";
import { restoreVm } from "./restore.js";
import { differingPages, memcheck, restoreRow, restoreTimed, waitFor } from "./testing/restore-timing.js";

// Real QEMU (TCG) and vpc-memcheck from the guest image (`make guest`): a VM is checkpointed
// (cow engine, a full epoch and an increment), killed, then restored eagerly and lazily from the
// same epoch, one after the other; both times memcheck must go on clean. Prints the two restores
// side by side (no timing asserts). After the lazy one, two more checkpoints must equal a copy of
// RAM taken in their pauses, byte for byte.

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
    const engine = createEngine(parseEngineSpec("cow"), { vm, store, agent } as Parameters<
      typeof createEngine
    >[1]);
    await engine.checkpoint(0);
    await new Promise((r) => setTimeout(r, 500));
    await engine.checkpoint(1);
    await engine.close();
    expect((await memcheck(vm)).failures).toBe(0);
    await vm.kill();
    await live.close();

    // Eager first, on the same epoch.
    const eager = await restoreTimed({ store, vmId: vm.name, epoch: 1, image, lazy: false });
    cleanup.push(() => eager.agentDir.remove());
    cleanup.push(() => eager.restored.vm.shutdown());
    const eagerCheck = await memcheck(eager.restored.vm);
    expect(eagerCheck.nonce).toBe(first.nonce);
    expect(eagerCheck.failures).toBe(0);
    const rows = [await restoreRow("eager", eager)];
    await eager.restored.vm.shutdown();

    // Lazy.
    const lazy = await restoreTimed({ store, vmId: vm.name, epoch: 1, image, lazy: true });
    cleanup.push(() => lazy.agentDir.remove());
    cleanup.push(() => lazy.restored.vm.shutdown());
    expect(lazy.restored.lazyFallback).toBeUndefined();
    const stats = await lazy.restored.lazy!.loaded;
    const loadedCheck = await memcheck(lazy.restored.vm);
    expect(loadedCheck.nonce).toBe(first.nonce);
    expect(stats.pagesByFault + stats.pagesByLoader + stats.prefilled).toBeGreaterThan(0);
    rows.push(await restoreRow("lazy", lazy));
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
    const engine2 = createEngine(parseEngineSpec("cow"), {
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
    await client.close();
    await rv.shutdown();

    // A flipped byte in a live block of epoch 1: the restore fails naming the file and the block's
    // offset, and no QEMU runs on.
    const pages = join(work, "store", "vms", rv.name, "e0000000000000001", "pages");
    const fh = await open(pages, "r+");
    const byte = Buffer.alloc(1);
    await fh.read(byte, 0, 1, 32 + 5000);
    byte[0]! ^= 0xff;
    await fh.write(byte, 0, 1, 32 + 5000);
    await fh.close();
    let failure: unknown;
    let pid: number | undefined;
    try {
      const r = await restoreVm({ store, vmId: rv.name, epoch: 1, image, lazy: true });
      pid = r.vm.pid;
      cleanup.push(() => r.vm.shutdown());
      await r.lazy!.loaded;
    } catch (e) {
      failure = e;
    }
    expect(CheckpointError.isInstance(failure)).toBe(true);
    expect((failure as CheckpointError).message).toContain(`checksum mismatch at offset 32 of ${pages}`);
    if (pid !== undefined) expect(() => process.kill(pid!, 0)).toThrow(); // QEMU is gone
  }, 300_000);
});
