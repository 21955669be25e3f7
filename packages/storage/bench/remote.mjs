// Benchmark of the remote store (prints numbers; not a test). Run: npm run build -w @vpc/storage &&
// node packages/storage/bench/remote.mjs (it leaves its bucket vpc-bench-<pid>; `scripts/store.sh down` removes all)
// Needs an S3 endpoint: VPC_S3_ENDPOINT, VPC_S3_ACCESS_KEY, VPC_S3_SECRET_KEY (VPC_S3_REGION), or
// STORE_ENV=<file> with those lines (scripts/store.sh up writes $STORE_DIR/s3.env; default
// /var/tmp/vpc-store/s3.env). Env: BENCH_RAM_MIB (guest size, default 256), BENCH_EPOCHS (increments
// after the full image, default 4), BENCH_DIRTY_MIB (pages written per increment, default 16),
// BENCH_VMS (guests per epoch, default 1), BENCH_PARALLEL (S3Store parallelVms, default 2).
//
// Per epoch: the local commit (beginEpoch → commitGlobal, fsync on) and the remote one (push after
// the local commit, by a Replicator), both timed from the epoch's start, as `durableMs` would be;
// then a fetch of the newest epoch into an empty store (download) and its restore.
import { randomFillSync } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CheckpointStore, Replicator, S3Store } from "../dist/index.js";

const MiB = 1 << 20;
const PS = 4096;
const RAM = Number(process.env.BENCH_RAM_MIB ?? 256) * MiB;
const EPOCHS = Number(process.env.BENCH_EPOCHS ?? 4);
const DIRTY = Number(process.env.BENCH_DIRTY_MIB ?? 16) * MiB;
const VMS = Array.from({ length: Number(process.env.BENCH_VMS ?? 1) }, (_, i) => `vm${i}`);
const PARALLEL = Number(process.env.BENCH_PARALLEL ?? 2);

function endpoint() {
  if (process.env.VPC_S3_ENDPOINT) return process.env;
  const file = process.env.STORE_ENV ?? "/var/tmp/vpc-store/s3.env";
  let text;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    throw new Error(`no S3 endpoint: set VPC_S3_ENDPOINT or run scripts/store.sh up (no ${file})`);
  }
  return Object.fromEntries(
    text
      .trim()
      .split("\n")
      .map((l) => l.split("=")),
  );
}

const env = endpoint();
const root = mkdtempSync(join(process.env.BENCH_DIR ?? tmpdir(), "vpc-remote-bench-"));
const rate = (bytes, ms) => `${(bytes / MiB / (ms / 1000)).toFixed(1)} MiB/s`;
try {
  const local = await CheckpointStore.open(join(root, "local"), { create: true });
  const remote = await S3Store.open(
    {
      endpoint: env.VPC_S3_ENDPOINT,
      accessKey: env.VPC_S3_ACCESS_KEY,
      secretKey: env.VPC_S3_SECRET_KEY,
      region: env.VPC_S3_REGION ?? "default",
      bucket: `vpc-bench-${process.pid}`,
      prefix: "bench/",
    },
    { create: true, parallelVms: PARALLEL },
  );
  const replicator = new Replicator(local, remote);
  // Guest-like RAM: a quarter zero pages (index entries only), the rest incompressible.
  const ram = Buffer.allocUnsafe(RAM);
  randomFillSync(ram);
  ram.fill(0, 0, RAM / 4);
  const rows = [];
  for (let e = 0; e <= EPOCHS; e++) {
    const t0 = performance.now();
    const full = e === 0;
    let bytes = 0;
    for (const vmId of VMS) {
      const w = await local.beginEpoch(vmId, e, { guestRamBytes: RAM, full });
      if (full) await w.writeRange(ram, 0, RAM / PS);
      else {
        const n = DIRTY / PS;
        const first = (RAM / 4 / PS + e * 997) % (RAM / PS - n);
        const data = Buffer.allocUnsafe(DIRTY);
        randomFillSync(data);
        await w.writePages(
          Uint32Array.from({ length: n }, (_, i) => first + i),
          data,
        );
      }
      w.setDeviceState(Buffer.alloc(64 << 10, e));
      bytes += (await w.commit()).bytes;
    }
    await local.commitGlobal(e, VMS);
    const localMs = performance.now() - t0;
    const r = await replicator.replicate(e, t0);
    rows.push({
      epoch: e,
      part: full ? "full" : "increment",
      bytes,
      localDurableMs: Math.round(localMs),
      s3DurableMs: Math.round(r.durableMs),
      upload: rate(r.bytesUploaded, r.durationMs),
    });
  }
  console.table(rows);
  const there = await CheckpointStore.open(join(root, "fetched"), { create: true });
  const f = await remote.fetch(EPOCHS, there);
  const t1 = performance.now();
  const restored = await there.restoreRam(VMS[0], EPOCHS, join(root, "vm.ram"));
  const restoreMs = performance.now() - t1;
  console.log(
    `${VMS.length} VM(s), parallelVms ${PARALLEL}: fetch of epoch ${EPOCHS} (${f.partsFetched.length} parts, ${(f.bytesFetched / MiB).toFixed(0)} MiB): ` +
      `${f.durationMs.toFixed(0)} ms, ${rate(f.bytesFetched, f.durationMs)}; restore of one VM from the fetched copy ` +
      `${restoreMs.toFixed(0)} ms (chain ${restored.chainLength})`,
  );
  await Promise.all([local.close(), there.close()]);
} finally {
  rmSync(root, { recursive: true, force: true });
}
