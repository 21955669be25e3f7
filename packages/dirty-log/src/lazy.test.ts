import { once } from "node:events";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { AgentError } from "./errors.js";
import { Harness } from "./internal/harness.js";
import { LAZY_NO_PAGE, LAZY_ZERO_PAGE, type LazyMap, writeLazyMap } from "./lazy-map.js";

const PAGE = 4096;
const PER_BLOCK = 16;
const FILE_HEADER = 32; // like a store pages file: blocks start after a header

/** One block of a test "store file": the guest page each slot fills (null: shadowed by a newer part). */
type TestBlock = { file: number; pages: (number | null)[] };

interface TestStore {
  map: LazyMap;
  mapPath: string;
  /** Guest RAM as an eager restore would leave it. */
  expected: Buffer;
  blockOffsets: number[];
  blockBytes: number;
}

function slotContent(file: number, block: number, slot: number): Buffer {
  const b = Buffer.alloc(PAGE, (file * 31 + block * 7 + slot) & 0xff);
  b.writeUInt32LE(0xc0ffee00 + file, 0);
  b.writeUInt32LE(block, 4);
  b.writeUInt32LE(slot, 8);
  return b;
}

/** Writes the blocks into files next to the harness's RAM, hashes them with the agent's XXH64. */
async function buildStore(h: Harness, files: number, blocks: TestBlock[]): Promise<TestStore> {
  const paths = Array.from({ length: files }, (_, f) => join(h.dir.dir, `pages-${f}`));
  const chunks: Buffer[][] = paths.map(() => [Buffer.alloc(FILE_HEADER, 0x5a)]);
  const fileBytes = paths.map(() => FILE_HEADER);
  const expected = Buffer.alloc(h.pages * PAGE);
  const blockOfPage = new Uint32Array(h.pages).fill(LAZY_ZERO_PAGE);
  const slotPages: number[] = [];
  const n = blocks.length;
  const b = {
    file: new Uint32Array(n),
    offset: new Float64Array(n),
    storedBytes: new Uint32Array(n),
    pageCount: new Uint16Array(n),
    hash: new BigUint64Array(n),
    firstSlot: new Uint32Array(n),
  };
  blocks.forEach((blk, i) => {
    const data = Buffer.concat(blk.pages.map((_, s) => slotContent(blk.file, i, s)));
    b.file[i] = blk.file;
    b.offset[i] = fileBytes[blk.file]!;
    b.storedBytes[i] = data.length;
    b.pageCount[i] = blk.pages.length;
    b.firstSlot[i] = slotPages.length;
    chunks[blk.file]!.push(data);
    fileBytes[blk.file]! += data.length;
    blk.pages.forEach((q, s) => {
      slotPages.push(q ?? LAZY_NO_PAGE);
      if (q === null) return;
      blockOfPage[q] = i;
      data.copy(expected, q * PAGE, s * PAGE, (s + 1) * PAGE);
    });
  });
  await Promise.all(paths.map((p, f) => writeFile(p, Buffer.concat(chunks[f]!))));
  for (let i = 0; i < n; i++) {
    const [hex] = await h.cmd(`xxh64 ${paths[b.file[i]!]} ${b.offset[i]} ${b.storedBytes[i]}`);
    b.hash[i] = BigInt(`0x${hex}`);
  }
  const map: LazyMap = {
    pageSize: PAGE,
    pageCount: h.pages,
    files: paths,
    blocks: b,
    slotPages: Uint32Array.from(slotPages),
    blockOfPage,
  };
  const mapPath = join(h.dir.dir, "lazy-map");
  await writeLazyMap(mapPath, map);
  return { map, mapPath, expected, blockOffsets: [...b.offset], blockBytes: PER_BLOCK * PAGE };
}

const range = (a: number, n: number): number[] => Array.from({ length: n }, (_, i) => a + i);

/**
 * A two-part chain over 256 pages: an older full image (pages 0-255 in 16 blocks) and a newer
 * increment holding pages 5-24 (two blocks) and zero pages 200-215. Only blocks with a live page
 * are in the map, shadowed slots are LAZY_NO_PAGE.
 */
function twoPartChain(): TestBlock[] {
  const newer: TestBlock[] = [
    { file: 0, pages: range(5, 16) },
    { file: 0, pages: range(21, 4) },
  ];
  const shadowed = (p: number) => (p >= 5 && p <= 24) || (p >= 200 && p <= 215);
  const older: TestBlock[] = range(0, 16).map((k) => ({
    file: 1,
    pages: range(k * PER_BLOCK, PER_BLOCK).map((p) => (shadowed(p) ? null : p)),
  }));
  return [...newer, ...older];
}

async function dump(h: Harness): Promise<Buffer> {
  const out = join(h.dir.dir, "dump");
  await h.cmd(`dump ${out}`);
  return readFile(out);
}

let harness: Harness | undefined;
afterEach(async () => {
  if (harness?.child.exitCode === null) harness.child.kill("SIGKILL");
  await harness?.close();
  harness = undefined;
});

describe("lazy restore (harness)", { timeout: 30_000 }, () => {
  it("fills each faulting page from its verified block, a block once, zero pages with zeros", async () => {
    harness = await Harness.start(256);
    const h = harness;
    const s = await buildStore(h, 2, twoPartChain());
    const load = await h.client.lazyLoad({ memPath: h.ramPath, mapPath: s.mapPath, loader: false });
    expect(load).toMatchObject({ pages: 256, zeroPages: 16, blocks: 18, files: 2, prefilled: 0 });

    await h.read([0, 7, 30]); // older block 0, newer block 0, older block 1
    await h.read([1, 2, 8, 31]); // filled with those blocks: no new faults
    let st = await h.client.lazyStatus();
    expect(st).toMatchObject({ faults: 3, zeroFaults: 0, blocksByFault: 3, blocksLeft: 15, done: false });
    expect(st.bytesRead).toBe(3 * s.blockBytes);
    await h.read([203]);
    st = await h.client.lazyStatus();
    expect(st).toMatchObject({ faults: 4, zeroFaults: 1 });

    expect((await dump(h)).equals(s.expected)).toBe(true);
    st = await h.client.lazyStatus();
    expect(st).toMatchObject({ done: true, failed: false, blocksLeft: 0, blocksByLoader: 0 });
    // Nothing read twice: every block of the map once (the newer part's second block is 4 pages).
    expect(st.bytesRead).toBe(17 * s.blockBytes + 4 * PAGE);
    expect(st.pagesByFault).toBe(256 - 16);
  });

  it("a background loader racing faults fills every page once, with its committed content", async () => {
    harness = await Harness.start(4096);
    const h = harness;
    // An older full image of 256 blocks, a newer part of scattered runs over it.
    const newerPages = range(0, 4096).filter((p) => p % 97 < 9);
    const newer: TestBlock[] = [];
    for (let i = 0; i < newerPages.length; i += PER_BLOCK)
      newer.push({ file: 0, pages: newerPages.slice(i, i + PER_BLOCK) });
    const inNewer = new Set(newerPages);
    const older: TestBlock[] = range(0, 256).map((k) => ({
      file: 1,
      pages: range(k * PER_BLOCK, PER_BLOCK).map((p) => (inNewer.has(p) ? null : p)),
    }));
    const s = await buildStore(h, 2, [...newer, ...older]);
    const total = s.map.blocks.storedBytes.reduce((a, x) => a + x, 0);
    await h.client.lazyLoad({ memPath: h.ramPath, mapPath: s.mapPath });
    let x = 7;
    const touched = range(0, 600).map(() => {
      x = (x * 1103515245 + 12345) % 2 ** 31;
      return x % 4096;
    });
    await h.read(touched);
    const st = await h.client.lazyStatus({ waitMs: 20_000 });
    expect(st).toMatchObject({ done: true, failed: false, blocksLeft: 0 });
    expect(st.blocksByFault + st.blocksByLoader).toBe(s.map.blocks.file.length);
    expect(st.bytesRead).toBe(total);
    expect((await dump(h)).equals(s.expected)).toBe(true);
  });

  it("tracking attaches after the load and sees the guest's writes", async () => {
    harness = await Harness.start(256);
    const h = harness;
    const s = await buildStore(h, 2, twoPartChain());
    await h.client.lazyLoad({ memPath: h.ramPath, mapPath: s.mapPath });
    // attach waits for the loader: one userfaultfd per range.
    await h.client.attach({ memPath: h.ramPath, mode: "async", stagingSlots: 64 });
    expect((await h.client.lazyStatus()).done).toBe(true);
    await h.client.arm();
    await h.write(1, [3, 100, 205]);
    const hv = await h.client.harvest();
    expect([...hv.dirty]).toEqual([3, 100, 205]);
  });

  describe.each([
    ["on a fault", false],
    ["by the loader", true],
  ])("a corrupt block found %s", (_, loader) => {
    it("is never served: the faulting thread stays blocked, status and attach name file and offset", async () => {
      harness = await Harness.start(256);
      const h = harness;
      const s = await buildStore(h, 2, twoPartChain());
      const bad = 3; // older block 1: pages 25-31 live
      const file = s.map.files[1]!;
      const bytes = await readFile(file);
      bytes[s.blockOffsets[bad]! + 9 * PAGE + 100]! ^= 1;
      await writeFile(file, bytes);
      await h.client.lazyLoad({ memPath: h.ramPath, mapPath: s.mapPath, loader });
      if (!loader) await h.read([0]); // a good block still loads
      // Never answered: the harness's reader stays blocked in the fault until it is killed.
      const blocked = h.read([30]).then(
        () => "served",
        () => "failed",
      );
      const st = await h.client.lazyStatus({ waitMs: 10_000 });
      expect(st.failed).toBe(true);
      expect(st.error?.message).toContain("checksum mismatch");
      expect(st.error?.message).toContain(file);
      expect(st.error?.offset).toBe(s.blockOffsets[bad]);
      const attach = await h.client.attach({ memPath: h.ramPath, mode: "async" }).catch((e: unknown) => e);
      expect(AgentError.isInstance(attach) && (attach as AgentError).errno).toBe(5); // EIO
      expect((attach as AgentError).agentMessage).toContain(file);
      // Still blocked after all that: never given unverified bytes.
      expect(await Promise.race([blocked, new Promise((r) => setTimeout(() => r("blocked"), 300))])).toBe(
        "blocked",
      );
      const exited = once(h.child, "exit");
      h.child.kill("SIGKILL");
      await exited;
    });
  });

  it("refuses a map that would fill a page from another page's slot", async () => {
    harness = await Harness.start(256);
    const h = harness;
    const s = await buildStore(h, 2, twoPartChain());
    const wrong = { ...s.map, blockOfPage: Uint32Array.from(s.map.blockOfPage) };
    wrong.blockOfPage[0] = 1; // page 0's slot is in block 2 (older block 0)
    await writeLazyMap(s.mapPath, wrong);
    const e = await h.client.lazyLoad({ memPath: h.ramPath, mapPath: s.mapPath }).catch((x: unknown) => x);
    expect(AgentError.isInstance(e) && (e as AgentError).errno).toBe(22); // EINVAL
    expect((e as AgentError).agentMessage).toContain("names page 0 wrongly");
  });
});
