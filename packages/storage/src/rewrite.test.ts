/**
 * Pages written more than once in one epoch (precopy's live rounds): the last copy wins and the part
 * stores one copy per page, whether the earlier copy was still in the writer's staging buffer or
 * already on disk. The staging buffer holds 8 MiB (2048 pages of 4 KiB), so the "on disk" cases write
 * more than that between two copies of a page.
 */
import { randomFillSync } from "node:crypto";
import { mkdtemp, open, readdir, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { prng } from "../test-fixtures/workload.mjs";
import { StoreError } from "./errors.js";
import type { EpochWriter } from "./internal/writer.js";
import { CheckpointStore, type OpenOptions } from "./store.js";

const PS = 4096;
const STAGED_PAGES = (8 << 20) / PS;
const HEADER = 32;
let root: string;
let seq = 0;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), "vpc-storage-rewrite-"));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

const fresh = (opts: OpenOptions = {}) =>
  CheckpointStore.open(join(root, `s${seq++}`), { create: true, fsync: false, ...opts });

/** A guest's RAM as the test's model, and the writes that change it. */
class Guest {
  readonly ram: Buffer;
  readonly #rand: () => number;

  constructor(
    readonly pages: number,
    seed: number,
  ) {
    this.ram = Buffer.alloc(pages * PS);
    this.#rand = prng(seed);
  }

  /**
   * Fresh content for `numbers`, applied to the model: zero for the pages in `zero`, else random or
   * (a third of them, so that LZ4 blocks occur) one repeated non-zero byte.
   */
  write(numbers: readonly number[], zero: ReadonlySet<number> = new Set()): Buffer {
    const rand = this.#rand;
    const data = Buffer.allocUnsafe(numbers.length * PS);
    numbers.forEach((p, i) => {
      const page = data.subarray(i * PS, (i + 1) * PS);
      if (zero.has(p)) {
        page.fill(0);
      } else if (rand() < 0.3) {
        page.fill(1 + Math.floor(rand() * 255));
      } else {
        randomFillSync(page);
        page[0]! |= 1;
      }
      page.copy(this.ram, p * PS);
    });
    return data;
  }

  /** Pages whose content is not zero. */
  nonZeroPages(): number {
    let n = 0;
    for (let p = 0; p < this.pages; p++)
      if (this.ram.subarray(p * PS, (p + 1) * PS).some((b) => b !== 0)) n++;
    return n;
  }
}

const range = (first: number, count: number): number[] => Array.from({ length: count }, (_, i) => first + i);

/** Writes `numbers` with fresh content in batches of 4096 pages (the agent engine's drain size). */
async function writeRound(w: EpochWriter, guest: Guest, numbers: readonly number[]): Promise<void> {
  for (let i = 0; i < numbers.length; i += 4096) {
    const batch = numbers.slice(i, i + 4096);
    await w.writePages(Uint32Array.from(batch), guest.write(batch));
  }
}

function partDir(store: CheckpointStore, vmId: string, epoch: number): string {
  return join(store.dir, "vms", vmId, `e${String(epoch).padStart(16, "0")}`);
}

async function pagesFileBytes(store: CheckpointStore, vmId: string, epoch: number): Promise<number> {
  return (await stat(join(partDir(store, vmId, epoch), "pages"))).size;
}

async function expectRestores(store: CheckpointStore, vmId: string, epoch: number, want: Buffer) {
  const dest = join(root, `restored-${vmId}-${epoch}`);
  await store.restoreRam(vmId, epoch, dest);
  expect((await readFile(dest)).equals(want), `${vmId}@${epoch}`).toBe(true);
  await rm(dest);
}

// Every case writes more than 8 MiB of pages: allow for a busy machine.
describe("pages written again in one epoch", { timeout: 30_000 }, () => {
  for (const where of ["staged", "on disk"] as const) {
    it(`stores a page written 3 times once and restores the last copy (earlier copies ${where})`, async () => {
      const store = await fresh();
      // Between two copies of a page: nothing (staged) or more pages than the staging buffer holds.
      const filler = where === "staged" ? 0 : STAGED_PAGES + 100;
      const guest = new Guest(filler + 8, 1);
      const w = await store.beginEpoch("vm", 0, { guestRamBytes: guest.pages * PS, full: true });
      for (let round = 0; round < 3; round++) {
        await w.writePages([3], guest.write([3]));
        if (round === 0) await writeRound(w, guest, range(8, filler));
      }
      const c = await w.commit();
      await store.commitGlobal(0, ["vm"]);
      expect(c.pagesStored).toBe(1 + filler);
      expect(await pagesFileBytes(store, "vm", 0)).toBe(HEADER + (1 + filler) * PS);
      await expectRestores(store, "vm", 0, guest.ram);
      expect((await store.readPage("vm", 0, 3)).equals(guest.ram.subarray(3 * PS, 4 * PS))).toBe(true);
      await store.verify();
      await store.close();
    });
  }

  it("counts each page once in the bytes commit reports", async () => {
    const once = await fresh();
    const again = await fresh();
    const guest = new Guest(STAGED_PAGES * 2, 2);
    const hot = range(100, 300);
    const results = [];
    for (const [store, rounds] of [
      [once, 1],
      [again, 3],
    ] as const) {
      const w = await store.beginEpoch("vm", 0, { guestRamBytes: guest.pages * PS, full: true });
      await writeRound(w, guest, range(0, guest.pages));
      for (let r = 1; r < rounds; r++) await writeRound(w, guest, hot);
      results.push(await w.commit());
      const dir = partDir(store, "vm", 0);
      let onDisk = 0;
      for (const f of await readdir(dir)) onDisk += (await stat(join(dir, f))).size;
      expect(results.at(-1)!.bytes).toBe(onDisk);
      await store.close();
    }
    // The same pages in the same order, except that the hot pages' last copies come last: the index
    // holds two more runs (24 bytes), the pages file is the same size.
    expect(results[1]!.bytes - results[0]!.bytes).toBe(24);
    expect(results[1]!.pagesStored).toBe(guest.pages);
  });

  for (const compression of ["none", "lz4"] as const) {
    it(`keeps one copy per page across a full epoch and increments of live rounds (${compression})`, async () => {
      const store = await fresh({ compression, pagesPerBlock: compression === "lz4" ? 5 : 16 });
      const guest = new Guest(STAGED_PAGES + 1500, 3);
      const rand = prng(33);
      const hotSet = (): number[] => range(0, guest.pages).filter(() => rand() < 0.3);
      const snapshots: Buffer[] = [];
      for (let e = 0; e < 3; e++) {
        const full = e === 0;
        const w = await store.beginEpoch("vm", e, { guestRamBytes: guest.pages * PS, full });
        // Like precopy: round 1 copies everything (full) or the dirty set, then the pages dirtied
        // during the previous round, three times.
        await writeRound(w, guest, full ? range(0, guest.pages) : hotSet());
        for (let r = 0; r < 3; r++) await writeRound(w, guest, hotSet());
        const c = await w.commit();
        await store.commitGlobal(e, ["vm"]);
        snapshots.push(Buffer.from(guest.ram));
        if (full) expect(c.pagesStored).toBe(guest.nonZeroPages());
        if (compression === "none") {
          expect(await pagesFileBytes(store, "vm", e)).toBe(HEADER + c.pagesStored * PS);
        }
      }
      for (let e = 0; e < 3; e++) await expectRestores(store, "vm", e, snapshots[e]!);
      await store.verify();
      await store.compact(2);
      await expectRestores(store, "vm", 2, snapshots[2]!);
      await store.close();
    });
  }

  it("lets the last occurrence win when one batch holds a page twice", async () => {
    const store = await fresh();
    const guest = new Guest(STAGED_PAGES + 1000, 4);
    const w = await store.beginEpoch("vm", 0, { guestRamBytes: guest.pages * PS, full: true });
    // Page 7 twice within the staging buffer, page 9 twice with a flush of the staging buffer between.
    const batch = [7, 1, 7, 9, ...range(10, STAGED_PAGES + 100), 9];
    await w.writePages(Uint32Array.from(batch), guest.write(batch));
    const c = await w.commit();
    await store.commitGlobal(0, ["vm"]);
    expect(c.pagesStored).toBe(3 + STAGED_PAGES + 100);
    expect(await pagesFileBytes(store, "vm", 0)).toBe(HEADER + c.pagesStored * PS);
    await expectRestores(store, "vm", 0, guest.ram);
    await store.close();
  });

  it("drops the stored copy of a page written again as zero, and stores one written after its zero", async () => {
    const store = await fresh();
    const guest = new Guest(STAGED_PAGES + 500, 5);
    const w0 = await store.beginEpoch("vm", 0, { guestRamBytes: guest.pages * PS, full: true });
    await writeRound(w0, guest, range(0, guest.pages));
    await w0.commit();
    await store.commitGlobal(0, ["vm"]);
    const w1 = await store.beginEpoch("vm", 1, { guestRamBytes: guest.pages * PS, full: false });
    // Page 2 non-zero then zero (its copy flushed meanwhile), page 4 zero then non-zero, page 6
    // non-zero then zero while still staged.
    await w1.writePages([2, 4, 6], guest.write([2, 4, 6], new Set([4])));
    await w1.writePages([6], guest.write([6], new Set([6])));
    await writeRound(w1, guest, range(10, STAGED_PAGES + 10));
    await w1.writePages([2, 4], guest.write([2, 4], new Set([2])));
    const c = await w1.commit();
    await store.commitGlobal(1, ["vm"]);
    expect(c.pagesStored).toBe(STAGED_PAGES + 10 + 1);
    expect(c.zeroPages).toBe(2);
    expect(await pagesFileBytes(store, "vm", 1)).toBe(HEADER + c.pagesStored * PS);
    await expectRestores(store, "vm", 1, guest.ram);
    await store.close();
  });

  it("fails the commit and publishes nothing when a block read back is corrupt", async () => {
    const store = await fresh();
    const guest = new Guest(STAGED_PAGES * 3, 6);
    const w = await store.beginEpoch("vm", 0, { guestRamBytes: guest.pages * PS, full: true });
    // Two staging buffers' worth: the second flush waits for the first write, so block 0 is on disk.
    await writeRound(w, guest, range(0, STAGED_PAGES * 2));
    const vmDir = join(store.dir, "vms", "vm");
    const [temp] = await readdir(vmDir);
    const pages = join(vmDir, temp!, "pages");
    const fh = await open(pages, "r+");
    const byte = Buffer.alloc(1);
    await fh.read(byte, 0, 1, HEADER + 5);
    byte[0]! ^= 0x10;
    await fh.write(byte, 0, 1, HEADER + 5);
    await fh.close();
    // Page 40 again: commit copies the live slots out, block 0 (pages 0..15, still live) included.
    await writeRound(w, guest, [40]);
    const err = await w.commit().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(StoreError.isInstance(err), String(err)).toBe(true);
    expect(err).toMatchObject({ code: "CORRUPT", what: "checksum", path: pages, offset: HEADER });
    expect(w.state).toBe("failed");
    expect(await readdir(vmDir)).toEqual([]);
    await store.close();
  });
});
