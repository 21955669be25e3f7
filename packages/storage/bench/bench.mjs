// Benchmark of @vpc/storage (prints numbers; not a test). Run: npm run bench -w @vpc/storage
// Env: BENCH_DIR (default os.tmpdir(), must be on the disk under test), BENCH_REPS (default 3),
// BENCH_RESTORE_REPS (default 3), BENCH_RESTORE_DIR (where restored RAM files go; default BENCH_DIR,
// e.g. /dev/shm to time restores into tmpfs as for a QEMU memory-backend-file).
//
// Writes are compared with `dd if=<random file> of=<file> bs=8M conv=fsync` copying the same number of
// bytes sequentially to the same directory in the same run: the source is random data (no zero pages,
// incompressible), already in the page cache for both, and both end with an fsync. Restores are timed
// with a warm page cache (caches are not dropped on a shared machine).
import { spawnSync } from "node:child_process";
import { randomFillSync } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { open } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CheckpointStore } from "../dist/index.js";

const MiB = 1 << 20;
const PS = 4096;
const REPS = Number(process.env.BENCH_REPS ?? 3);
const RESTORE_REPS = Number(process.env.BENCH_RESTORE_REPS ?? 3);
const root = mkdtempSync(join(process.env.BENCH_DIR ?? tmpdir(), "vpc-storage-bench-"));
const restoreDest = join(process.env.BENCH_RESTORE_DIR ?? root, `vpc-storage-bench-${process.pid}.ram`);
let storeSeq = 0;

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
const best = (xs) => Math.min(...xs);
const fmt = (ms) => `${ms.toFixed(0)} ms`;
const rate = (bytes, ms) => `${(bytes / MiB / (ms / 1000)).toFixed(0)} MiB/s`;

function makeRandomFile(path, bytes) {
  const buf = Buffer.allocUnsafe(bytes);
  randomFillSync(buf);
  writeFileSync(path, buf);
  return buf;
}

function dd(src, bytes) {
  const out = join(root, "dd.out");
  const t0 = performance.now();
  const r = spawnSync("dd", [
    `if=${src}`,
    `of=${out}`,
    "bs=8M",
    `count=${bytes / (8 * MiB)}`,
    "conv=fsync",
    "status=none",
  ]);
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`dd failed: ${r.stderr}`);
  rmSync(out);
  return ms;
}

async function newStore(opts = {}) {
  return CheckpointStore.open(join(root, `store${storeSeq++}`), { create: true, ...opts });
}

async function dropStore(store) {
  await store.close();
  rmSync(store.dir, { recursive: true, force: true });
}

async function benchFullEpoch(src, bytes) {
  const pages = bytes / PS;
  const fh = await open(src, "r");
  try {
    const store = await newStore();
    const t0 = performance.now();
    const w = await store.beginEpoch("vm", 0, { guestRamBytes: bytes, full: true });
    await w.writeRange(fh, 0, pages);
    await w.commit();
    const ms = performance.now() - t0;
    await dropStore(store);
    return ms;
  } finally {
    await fh.close();
  }
}

/** `count` distinct random page numbers in random order. */
function randomPages(guestPages, count) {
  const chosen = new Set();
  while (chosen.size < count) chosen.add(Math.floor(Math.random() * guestPages));
  return Uint32Array.from(chosen);
}

async function benchScattered(data, guestBytes, count) {
  const guestPages = guestBytes / PS;
  // Distinct random pages in random order, written in batches as a dirty-log harvest would hand them.
  const numbers = randomPages(guestPages, count);
  const store = await newStore();
  const t0 = performance.now();
  const w = await store.beginEpoch("vm", 0, { guestRamBytes: guestBytes, full: true });
  const batch = 512;
  for (let i = 0; i < count; i += batch) {
    const n = Math.min(batch, count - i);
    await w.writePages(numbers.subarray(i, i + n), data.subarray(i * PS, (i + n) * PS));
  }
  await w.commit();
  const ms = performance.now() - t0;
  await dropStore(store);
  return ms;
}

async function buildChain(store, data, guestBytes, increments, fraction) {
  const guestPages = guestBytes / PS;
  const srcPages = data.length / PS;
  const w0 = await store.beginEpoch("vm", 0, { guestRamBytes: guestBytes, full: true });
  for (let p = 0; p < guestPages; p += srcPages) {
    const n = Math.min(srcPages, guestPages - p);
    await w0.writePages(
      Uint32Array.from({ length: n }, (_, k) => p + k),
      data.subarray(0, n * PS),
    );
  }
  await w0.commit();
  await store.commitGlobal(0, ["vm"]);
  const perIncrement = Math.floor(guestPages * fraction);
  for (let e = 1; e <= increments; e++) {
    const w = await store.beginEpoch("vm", e, { guestRamBytes: guestBytes, full: false });
    const numbers = Uint32Array.from({ length: perIncrement }, () => Math.floor(Math.random() * guestPages));
    const off = Math.floor(Math.random() * (srcPages - perIncrement)) * PS;
    await w.writePages(numbers, data.subarray(off, off + perIncrement * PS));
    await w.commit();
    await store.commitGlobal(e, ["vm"]);
  }
}

/** Writes `numbers` in batches of 4096 pages (the agent engine's drain size), data from `data` at `from`. */
async function writeRound(w, numbers, data, from) {
  const srcPages = data.length / PS;
  for (let i = 0; i < numbers.length; i += 4096) {
    const n = Math.min(4096, numbers.length - i);
    const at = (from + i) % (srcPages - n);
    await w.writePages(numbers.subarray(i, i + n), data.subarray(at * PS, (at + n) * PS));
  }
}

/**
 * precopy's live rounds: a full epoch copies every page, then the hot pages again in each further
 * round; an increment copies the hot pages in every round. Each round writes other data, so the last
 * copy is the one that counts. Returns the time from beginEpoch to a durable commit and its bytes.
 */
async function benchRewriteRounds(data, guestBytes, hotCount, rounds) {
  const guestPages = guestBytes / PS;
  // A dirty set comes in page order.
  const hot = randomPages(guestPages, hotCount).sort();
  const all = Uint32Array.from({ length: guestPages }, (_, p) => p);
  const store = await newStore();
  const out = {};
  for (const [epoch, kind] of [
    [0, "full"],
    [1, "increment"],
  ]) {
    const t0 = performance.now();
    const w = await store.beginEpoch("vm", epoch, { guestRamBytes: guestBytes, full: kind === "full" });
    for (let r = 0; r < rounds; r++) {
      await writeRound(w, r === 0 && kind === "full" ? all : hot, data, (epoch * rounds + r) * hotCount);
    }
    const c = await w.commit();
    out[kind] = { ms: performance.now() - t0, bytes: c.bytes };
    await store.commitGlobal(epoch, ["vm"]);
  }
  await dropStore(store);
  return out;
}

const RESTORE_VARIANTS = [
  { label: "newest-first, 256 MiB window", strategy: "newest-first" },
  { label: "oldest-first, 256 MiB window", strategy: "oldest-first" },
  {
    label: "newest-first, 1 GiB window",
    strategy: "newest-first",
    windowBytes: 1024 * MiB,
    onlyAbove: 256 * MiB,
  },
  { label: "newest-first, pwrite per page", strategy: "newest-first", windowBytes: 0 },
  { label: "oldest-first, pwrite per page", strategy: "oldest-first", windowBytes: 0 },
];

async function benchRestore(data, guestBytes, increments, fraction) {
  // fsync on: the chain's data is on disk before timing, so background writeback does not bleed into restores.
  const store = await newStore();
  await buildChain(store, data, guestBytes, increments, fraction);
  const dest = restoreDest;
  const variants = RESTORE_VARIANTS.filter((v) => !(v.onlyAbove >= guestBytes));
  const times = new Map(variants.map((v) => [v.label, []]));
  let last;
  for (let r = 0; r < RESTORE_REPS; r++) {
    // Rotate the order so that no variant always runs first after the chain was built.
    for (const v of [...variants.slice(r % variants.length), ...variants.slice(0, r % variants.length)]) {
      last = await store.restoreRam("vm", increments, dest, v);
      times.get(v.label).push(last.durationMs);
      rmSync(dest);
    }
  }
  // Lazy-restore building block: random single pages of the newest epoch (indexes cached after the first).
  const guestPages = guestBytes / PS;
  await store.readPage("vm", increments, 0);
  const n = 2000;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await store.readPage("vm", increments, Math.floor(Math.random() * guestPages));
  const pageUs = ((performance.now() - t0) * 1000) / n;
  await dropStore(store);
  return { times, chainLength: last.chainLength, pageUs };
}

async function main() {
  const fullBytes = 256 * MiB;
  const src = join(root, "random.bin");
  const data = makeRandomFile(src, fullBytes);
  console.log(
    `@vpc/storage benchmark in ${root} (${REPS} reps, medians; dd = bs=8M conv=fsync from random data)`,
  );

  const ddFull = [];
  const storeFull = [];
  for (let r = 0; r < REPS; r++) {
    ddFull.push(dd(src, fullBytes));
    storeFull.push(await benchFullEpoch(src, fullBytes));
  }
  const dF = median(ddFull);
  const sF = median(storeFull);
  console.log(
    `write full epoch 256 MiB:   store ${fmt(sF)} (${rate(fullBytes, sF)})  dd ${fmt(dF)} (${rate(fullBytes, dF)})  store/dd throughput ${(dF / sF).toFixed(2)}`,
  );

  const scatterPages = 16384;
  const scatterBytes = scatterPages * PS;
  const ddScatter = [];
  const storeScatter = [];
  for (let r = 0; r < REPS; r++) {
    ddScatter.push(dd(src, scatterBytes));
    storeScatter.push(await benchScattered(data, 1024 * MiB, scatterPages));
  }
  const dS = median(ddScatter);
  const sS = median(storeScatter);
  console.log(
    `write ${scatterPages} scattered 4 KiB pages of a 1 GiB guest (64 MiB): store ${fmt(sS)} (${rate(scatterBytes, sS)})  dd ${fmt(dS)} (${rate(scatterBytes, dS)})  store/dd throughput ${(dS / sS).toFixed(2)}`,
  );

  const hotCount = 25000;
  const roundsRuns = [];
  for (let r = 0; r < REPS; r++) roundsRuns.push(await benchRewriteRounds(data, 256 * MiB, hotCount, 4));
  for (const kind of ["full", "increment"]) {
    const ms = median(roundsRuns.map((x) => x[kind].ms));
    const mb = median(roundsRuns.map((x) => x[kind].bytes)) / 1e6;
    console.log(
      `precopy-style ${kind} epoch, 256 MiB guest, ${hotCount} hot pages rewritten in 4 rounds: ${fmt(ms)}, ${mb.toFixed(0)} MB stored`,
    );
  }

  for (const guestMiB of [256, 1024]) {
    const { times, chainLength, pageUs } = await benchRestore(data, guestMiB * MiB, 10, 0.05);
    console.log(`restore ${guestMiB} MiB, base + 10 increments of 5% of pages each (chain ${chainLength}):`);
    for (const [label, t] of times) {
      console.log(
        `  ${label.padEnd(32)} best ${fmt(best(t)).padStart(8)} (${rate(guestMiB * MiB, best(t))})  median ${fmt(median(t))}`,
      );
    }
    console.log(`  readPage of a random page: ${pageUs.toFixed(0)} µs per page (2000 pages, indexes cached)`);
  }
}

try {
  await main();
} finally {
  rmSync(restoreDest, { force: true });
  rmSync(root, { recursive: true, force: true });
}
