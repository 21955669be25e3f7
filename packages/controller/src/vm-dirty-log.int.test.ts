import {
  agentEnv,
  agentLibraryPath,
  createAgentDir,
  DirtyLogClient,
  type TrackingMode,
} from "@vpc/dirty-log";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readCounter, startCounter } from "./guest-counter.js";
import { type GuestImage, loadGuestImage } from "./guest-image.js";
import { Vm } from "./vm.js";

// Real QEMU (TCG) with the dirty-log agent preloaded: tracking and COW cycles in both modes.
// VPC_SOAK_SECONDS sets the cycling time per mode (default 15 s keeps the file near 2 minutes).
const SOAK_MS = Number(process.env.VPC_SOAK_SECONDS ?? 15) * 1000;

describe("Vm with the dirty-log agent (real QEMU, TCG)", () => {
  let image: GuestImage;
  let vm: Vm | undefined;
  let agent: DirtyLogClient | undefined;
  let removeDir: (() => Promise<void>) | undefined;

  beforeAll(async () => {
    image = await loadGuestImage();
    const dir = await createAgentDir();
    removeDir = dir.remove;
    const { LD_PRELOAD: _preload, ...env } = agentEnv(dir.socketPath);
    vm = await Vm.start({ name: "dl-int", image, preload: agentLibraryPath(), env });
    agent = await DirtyLogClient.connect(dir.socketPath, { timeoutMs: 10_000 });
  });

  afterAll(async () => {
    await agent?.close();
    await vm?.shutdown();
    await removeDir?.();
  });

  it.each<TrackingMode>(["async", "sync"])(
    "%s mode: idle guest few pages, writing guest many, pause/harvest/protect/save/resume cycles",
    async (mode) => {
      const v = vm!;
      const a = agent!;
      const info = await a.attach({ memPath: v.ramPath, mode, stagingSlots: 2048 });
      expect(info.ramBytes).toBeGreaterThan(0);
      await a.arm();
      await new Promise((r) => setTimeout(r, 1000));
      await v.pause();
      const idle = await a.harvest();
      await v.resume();
      await startCounter(v, "-p 200");
      let cycles = 0;
      let busiest = 0;
      const deadline = Date.now() + SOAK_MS;
      while (Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 300));
        await v.pause();
        const h = await a.harvest();
        busiest = Math.max(busiest, h.dirty.count());
        await a.protect(h.dirty);
        await v.resume();
        let saved = 0;
        await a.saveProtected(h.dirty, () => {
          saved++;
        });
        expect(saved).toBe(h.dirty.count());
        await a.confirm();
        cycles++;
      }
      expect(cycles).toBeGreaterThan(3);
      expect(busiest).toBeGreaterThan(idle.dirty.count());
      expect(busiest).toBeGreaterThan(200);
      const st = await a.stats();
      expect(st.failed).toBe(false);
      expect(st.pending).toBe(0);
      await a.detach();
      // Detached: the guest keeps running and its counter advances.
      const before = await readCounter(v);
      await new Promise((r) => setTimeout(r, 500));
      expect((await readCounter(v)).value).toBeGreaterThan(before.value);
    },
  );
});
