import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { xxh64 } from "@node-rs/xxhash";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { CheckpointStore, NO_BLOCK, type RamLocation, StoreArgumentError } from "./index.js";

const PAGE = 4096;
const PAGES = 300;

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "vpc-locate-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function page(fill: number): Buffer {
  const b = Buffer.alloc(PAGE, fill);
  b.writeUInt32LE(fill * 7919, 0);
  return b;
}

/** RAM rebuilt from a location alone, verifying every block as a lazy loader must. */
async function rebuild(loc: RamLocation): Promise<{ ram: Buffer; filled: number }> {
  const ram = Buffer.alloc(loc.pageCount * loc.pageSize);
  const files = await Promise.all(loc.files.map((f) => readFile(f)));
  let filled = 0;
  const b = loc.blocks;
  for (let i = 0; i < b.file.length; i++) {
    const data = files[b.file[i]!]!.subarray(b.offset[i]!, b.offset[i]! + b.storedBytes[i]!);
    expect(xxh64(data)).toBe(b.hash[i]);
    for (let k = 0; k < b.pageCount[i]!; k++) {
      const q = loc.slotPages[b.firstSlot[i]! + k]!;
      if (q === NO_BLOCK) continue;
      expect(loc.blockOfPage[q]).toBe(i);
      data.copy(ram, q * loc.pageSize, k * loc.pageSize, (k + 1) * loc.pageSize);
      filled++;
    }
  }
  return { ram, filled };
}

describe("locateRam", () => {
  it("resolves a chain into blocks whose live slots rebuild exactly what restoreRam writes", async () => {
    const store = await CheckpointStore.open(join(dir, "s"), { create: true, pagesPerBlock: 8 });
    const ram = Buffer.concat(
      Array.from({ length: PAGES }, (_, p) => (p % 5 === 0 ? Buffer.alloc(PAGE) : page(p))),
    );
    const w0 = await store.beginEpoch("vm", 0, { guestRamBytes: ram.length, full: true });
    await w0.writeRange(ram, 0, PAGES);
    await w0.commit();
    await store.commitGlobal(0, ["vm"]);
    // Epoch 1 rewrites pages 10-29 and zeroes 100-119; epoch 2 rewrites 15-17 and 250.
    const w1 = await store.beginEpoch("vm", 1, { guestRamBytes: ram.length, full: false });
    const p1 = [
      ...Array.from({ length: 20 }, (_, i) => 10 + i),
      ...Array.from({ length: 20 }, (_, i) => 100 + i),
    ];
    await w1.writePages(
      Uint32Array.from(p1),
      Buffer.concat(p1.map((p) => (p >= 100 ? Buffer.alloc(PAGE) : page(p + 1)))),
    );
    await w1.commit();
    await store.commitGlobal(1, ["vm"]);
    const w2 = await store.beginEpoch("vm", 2, { guestRamBytes: ram.length, full: false });
    await w2.writePages(
      Uint32Array.from([15, 16, 17, 250]),
      Buffer.concat([15, 16, 17, 250].map((p) => page(p + 2))),
    );
    await w2.commit();
    await store.commitGlobal(2, ["vm"]);

    const loc = await store.locateRam("vm", 2);
    expect(loc).toMatchObject({ chainLength: 3, pageCount: PAGES, pageSize: PAGE, files: expect.any(Array) });
    expect(loc.files).toHaveLength(3);
    const { ram: rebuilt, filled } = await rebuild(loc);
    await store.restoreRam("vm", 2, join(dir, "eager"));
    expect(rebuilt.equals(await readFile(join(dir, "eager")))).toBe(true);
    expect(filled + loc.zeroPages).toBe(PAGES);
    for (const p of [0, 5, 100, 119]) expect(loc.blockOfPage[p]).toBe(NO_BLOCK);
    await store.close();
  });

  it("names the file and offset of a compressed block: lazy restore serves raw blocks only", async () => {
    const store = await CheckpointStore.open(join(dir, "s"), { create: true, compression: "lz4" });
    const w0 = await store.beginEpoch("vm", 0, { guestRamBytes: 16 * PAGE, full: true });
    await w0.writeRange(Buffer.alloc(16 * PAGE, 0x41), 0, 16);
    await w0.commit();
    await store.commitGlobal(0, ["vm"]);
    const e = await store.locateRam("vm", 0).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(StoreArgumentError);
    expect((e as StoreArgumentError).message).toMatch(
      /e0000000000000000\/pages: the block at offset 32 is compressed/,
    );
    await store.close();
  });
});
