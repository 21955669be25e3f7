// Benchmark: eager vs lazy restore of one VM from the same epoch, side by side in one run.
//   npm run bench -w @vpc/controller -- bench/restore.bench.ts
// A TCG guest runs vpc-memcheck over a large region (its step counter is the guest-side
// heartbeat), is checkpointed (cow: a full epoch, then an increment), killed, and restored from
// the increment in ABBA order (eager, lazy, lazy, eager, …) so that neither mode always goes
// first. Per restore: RAM ms (eager: materialise the chain; lazy: resolve it into the lazy map),
// QEMU running (request → `cont`), guest answered (first memcheck read over SSH), guest progress
// (its step counter moved), and for lazy: all pages in, MISSING faults, their total stall, pages
// filled by faults and by the background loader. No timing asserts: it prints numbers.
// Environment: VPC_BENCH_RESTORE_ROUNDS (ABBA pairs, default 2), VPC_BENCH_MEM_MIB (default 256),
// VPC_BENCH_MEMCHECK (vpc-memcheck arguments).
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CheckpointStore } from "@vpc/storage";
import { expect, it } from "vitest";
import { createEngine, parseEngineSpec, startVmWithAgent } from "../src/engines/index.js";
import { loadGuestImage } from "../src/guest-image.js";
import { memcheck, restoreRow, restoreTimed, waitFor } from "../src/testing/restore-timing.js";

const ROUNDS = Number(process.env.VPC_BENCH_RESTORE_ROUNDS ?? 2);
const MEM_MIB = Number(process.env.VPC_BENCH_MEM_MIB ?? 256);
const MEMCHECK = process.env.VPC_BENCH_MEMCHECK ?? "-m 96 -w 256 -s 2000 -v 300";

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length / 2;
  return s.length % 2 ? s[Math.floor(m)]! : (s[m - 1]! + s[m]!) / 2;
}

it("eager vs lazy restore of one VM", async () => {
  const image = await loadGuestImage();
  const work = await mkdtemp(join(tmpdir(), "vpc-bench-restore-"));
  const live = await startVmWithAgent({ name: "bench-restore", image, memMiB: MEM_MIB });
  let store: CheckpointStore | undefined;
  try {
    const { vm, agent } = live;
    await vm.run(`vpc-memcheck ${MEMCHECK} >/dev/null 2>/run/memcheck.err </dev/null &`);
    await waitFor(
      () => memcheck(vm),
      (m) => m.verifies >= 1,
      60_000,
    );
    store = await CheckpointStore.open(join(work, "store"), { create: true, fsync: false });
    const engine = createEngine(parseEngineSpec("cow"), { vm, store, agent } as Parameters<
      typeof createEngine
    >[1]);
    await engine.checkpoint(0);
    await new Promise((r) => setTimeout(r, 1000));
    await engine.checkpoint(1);
    await engine.close();
    await vm.kill();
    await live.close();

    const rows: Record<string, number | string>[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      for (const lazy of [false, true, true, false]) {
        const m = await restoreTimed({ store, vmId: vm.name, epoch: 1, image, lazy });
        try {
          rows.push(await restoreRow(lazy ? "lazy" : "eager", m));
          expect((await memcheck(m.restored.vm)).failures).toBe(0);
        } finally {
          await m.restored.vm.shutdown();
          await m.agentDir.remove();
        }
      }
    }
    console.log(`restore of one ${MEM_MIB} MiB VM from epoch 1 (cow), ABBA order, ${rows.length} restores:`);
    console.table(rows);
    const medians = Object.fromEntries(
      ["eager", "lazy"].map((mode) => {
        const mine = rows.filter((r) => r.mode === mode);
        const keys = Object.keys(mine[0]!).filter((k) => k !== "mode");
        return [mode, Object.fromEntries(keys.map((k) => [k, median(mine.map((r) => Number(r[k])))]))];
      }),
    );
    console.log("medians:");
    console.table(medians);
    console.log(JSON.stringify({ bench: "restore", memMiB: MEM_MIB, rows, medians }));
  } finally {
    await live.close().catch(() => undefined);
    await store?.close();
    await rm(work, { recursive: true, force: true });
  }
});
