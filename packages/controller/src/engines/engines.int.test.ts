import { copyFile, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CheckpointStore } from "@vpc/storage";
import { afterEach, describe, expect, it } from "vitest";
import { CheckpointLoop } from "../checkpoint-loop.js";
import { loadGuestImage } from "../guest-image.js";
import { differingPages, memcheck, waitFor } from "../testing/restore-timing.js";
import { type AgentVm, restoreVmWithAgent, startVmWithAgent } from "./agent-vm.js";
import { createEngine, parseEngineSpec } from "./index.js";

// Real QEMU (TCG) with the agent and vpc-memcheck from the guest image (`make guest`).
// VPC_ENGINE_TEST_ENGINES="cow vpc" narrows the set; VPC_ENGINE_TEST_CHECKPOINTS sets how many.
const ENGINES = (
  process.env.VPC_ENGINE_TEST_ENGINES ?? "stop-copy cow vpc precopy qemu-stop qemu-snapshot"
).split(/\s+/);
const CHECKPOINTS = Number(process.env.VPC_ENGINE_TEST_CHECKPOINTS ?? 3);
const INCREMENTAL = new Set(["stop-copy", "cow", "vpc", "precopy"]);

describe("checkpoint engines (real QEMU, TCG): checkpoint, SIGKILL, restore", () => {
  let live: AgentVm | undefined;
  let work: string | undefined;

  afterEach(async () => {
    await live?.close().catch(() => undefined);
    live = undefined;
    if (work) await rm(work, { recursive: true, force: true });
    work = undefined;
  });

  for (const spec of ENGINES) {
    it(`${spec}: memcheck continues clean after restore from the last committed epoch`, async () => {
      const image = await loadGuestImage();
      work = await mkdtemp(join(tmpdir(), `vpc-engine-${spec}-`));
      const name = `eng-${spec}`.replace(/[^a-z0-9-]/g, "");
      live = await startVmWithAgent({ name, image });
      const { vm, agent } = live;
      await vm.run("vpc-memcheck -m 16 -w 64 -s 2000 -v 300 >/dev/null 2>/run/memcheck.err </dev/null &");
      const first = await waitFor(
        () => memcheck(vm),
        (m) => m.verifies >= 1,
        20_000,
      );

      const store = await CheckpointStore.open(join(work, "store"), { create: true, fsync: false });
      // Guest RAM as it was in each epoch's pause: what that epoch must restore, byte for byte.
      const atPause = (epoch: number) => join(work!, `ram-at-pause-${epoch}`);
      const engine = createEngine(parseEngineSpec(spec), {
        vm,
        store,
        agent,
        onPaused: INCREMENTAL.has(spec) ? (epoch: number) => copyFile(vm.ramPath, atPause(epoch)) : undefined,
      } as Parameters<typeof createEngine>[1]);
      const records = [];
      for (let e = 0; e < CHECKPOINTS; e++) {
        records.push(await engine.checkpoint(e));
        await new Promise((r) => setTimeout(r, 400));
      }
      await engine.close();
      const last = CHECKPOINTS - 1;
      expect(await store.listEpochs()).toEqual([...Array(CHECKPOINTS).keys()]);
      expect(records[0]!.full).toBe(true);
      for (const r of records) expect(r.pauseMs).toBeGreaterThan(0);
      if (INCREMENTAL.has(spec)) {
        expect(records[last]!.full).toBe(false);
        expect(records[last]!.pagesToSave).toBeLessThan(65536);
      }
      const beforeKill = await memcheck(vm);
      await vm.kill();
      await agent.close();
      const agentDir = live.agentDir;
      live = undefined;
      await agentDir.remove();

      if (INCREMENTAL.has(spec)) {
        // Every epoch, the full first one included (its COW saver runs while the guest writes
        // pages that were never populated before).
        const restoredRam = join(work, "ram-restored");
        for (let e = 0; e <= last; e++) {
          await store.restoreRam(vm.name, e, restoredRam);
          expect({ epoch: e, differingPages: await differingPages(restoredRam, atPause(e)) }).toEqual({
            epoch: e,
            differingPages: 0,
          });
          await rm(atPause(e));
        }
      }
      const restored = await restoreVmWithAgent({ store, vmId: vm.name, epoch: last, image });
      live = restored;
      expect(restored.restored.engine).toBe(engine.spec);
      const after = await memcheck(restored.vm);
      expect(after.nonce).toBe(first.nonce);
      // The guest ran on for a moment before this read, so only a lower bound is meaningful.
      expect(after.verifies).toBeGreaterThanOrEqual(first.verifies);
      expect(beforeKill.failures).toBe(0);
      const later = await waitFor(
        () => memcheck(restored.vm),
        (m) => m.verifies >= after.verifies + 3,
        20_000,
      );
      expect(later.failures).toBe(0);
      expect(await restored.vm.run("cat /run/memcheck.err")).toBe("");
      await store.close();
    }, 180_000);
  }

  // Class S finishes in well under a second in a TCG guest (FIELD-NOTES §5), before a 1 s
  // checkpoint loop has taken an increment, so the test runs CG class W three times in a row (~3 s each in the guest) and kills
  // the VM during the run.
  it("NPB CG.W with vpc checkpoints every second, killed mid-run and restored, verifies", async () => {
    const image = await loadGuestImage();
    if (!image.npb.includes("cg")) throw new Error("guest image lacks NPB (run make images)");
    work = await mkdtemp(join(tmpdir(), "vpc-engine-npb-"));
    live = await startVmWithAgent({ name: "eng-npb", image });
    const { vm, agent } = live;
    await vm.run(
      "cd /tmp && (for i in 1 2 3; do mpiexec -n 1 /opt/npb/bin/cg W || exit 1; done > /run/npb.out 2>&1; echo NPB-EXIT $? >> /run/npb.out) </dev/null >/dev/null 2>&1 &",
    );
    const store = await CheckpointStore.open(join(work, "store"), { create: true, fsync: false });
    const engine = createEngine(parseEngineSpec("vpc"), { vm, store, agent });
    const loop = new CheckpointLoop({ vm, engine, intervalMs: 1000 }).start();
    // Kill once an increment after the full epoch is committed (a loaded machine takes longer
    // than the 1 s interval for the full one, so wait for the commit, not for a time).
    await waitFor(
      async () => loop.lastCommitted ?? -1,
      (e) => e >= 1,
      60_000,
    );
    const { lastCommitted, records } = await loop.stop();
    await engine.close();
    expect(records.every((r) => r.ok)).toBe(true);
    expect(lastCommitted).toBeGreaterThanOrEqual(1);
    const atKill = await vm.run("cat /run/npb.out");
    expect(atKill).not.toContain("NPB-EXIT");
    await vm.kill();
    const agentDir = live.agentDir;
    await agent.close();
    live = undefined;
    await agentDir.remove();
    const restored = await restoreVmWithAgent({ store, vmId: vm.name, epoch: lastCommitted!, image });
    live = restored;
    const out = await waitFor(
      () => restored.vm.run("cat /run/npb.out"),
      (o) => o.includes("NPB-EXIT"),
      120_000,
    );
    expect(out.match(/Verification\s*=\s*SUCCESSFUL/g)).toHaveLength(3);
    expect(out).toContain("NPB-EXIT 0");
    await store.close();
  }, 240_000);
});
