// Benchmark: boot time, pause time and device-state save per transport, full checkpoint and
// restore time, on one real TCG guest. Run: npm run bench -w @vpc/controller
// (VPC_BENCH_ROUNDS=15 rounds per transport by default).
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, it } from "vitest";
import { readFullCheckpoint, restoreOptionsFor, takeFullCheckpoint } from "../src/checkpoint.js";
import { startCounter } from "../src/guest-counter.js";
import { Vm } from "../src/vm.js";

const ROUNDS = Number(process.env.VPC_BENCH_ROUNDS ?? 15);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
}

it("device state, checkpoint and restore timings", async () => {
  const work = await mkdtemp(join(tmpdir(), "vpc-bench-"));
  let vm: Vm | undefined;
  let restored: Vm | undefined;
  try {
    const t0 = performance.now();
    vm = await Vm.start({ name: "bench0" });
    const bootMs = performance.now() - t0;
    await startCounter(vm);
    const rows = {
      exec: { pause: [] as number[], save: [] as number[], bytes: [] as number[] },
      unix: { pause: [] as number[], save: [] as number[], bytes: [] as number[] },
    };
    for (let i = 0; i < ROUNDS * 2; i++) {
      const transport = i % 2 === 0 ? "exec" : "unix";
      const row = rows[transport];
      const p0 = performance.now();
      await vm.pause();
      const saved = await vm.saveDeviceState(join(work, `ds-${i}`), { transport });
      await vm.resume();
      row.pause.push(performance.now() - p0);
      row.save.push(saved.ms);
      row.bytes.push(saved.bytes);
      await new Promise((r) => setTimeout(r, 100));
    }
    const stopCont: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      const p0 = performance.now();
      await vm.pause();
      await vm.resume();
      stopCont.push(performance.now() - p0);
    }
    const p0 = performance.now();
    await vm.pause();
    const cp = await takeFullCheckpoint(vm, join(work, "cp"));
    await vm.resume();
    const checkpointPauseMs = performance.now() - p0;
    await vm.kill();
    restored = await Vm.restore(restoreOptionsFor(await readFullCheckpoint(cp.dir)));
    const report = {
      rounds: ROUNDS,
      bootMs: Math.round(bootMs),
      bootTimings: vm.timings,
      stopContMedianMs: median(stopCont),
      transports: Object.fromEntries(
        Object.entries(rows).map(([t, r]) => [
          t,
          { pauseMedianMs: median(r.pause), saveMedianMs: median(r.save), bytesMedian: median(r.bytes) },
        ]),
      ),
      fullCheckpoint: { pauseMs: checkpointPauseMs, ...cp.timings, ramBytes: cp.ramBytes },
      restore: restored.timings,
    };
    console.log(JSON.stringify(report, null, 2));
    expect(report.transports.exec?.bytesMedian).toBeGreaterThan(0);
  } finally {
    await vm?.shutdown();
    await restored?.shutdown();
    await rm(work, { recursive: true, force: true });
  }
});
