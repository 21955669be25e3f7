/** The inspection calls behind `vpc store`: describeChain, verifyEach, and dry runs of gc and compact. */
import { cp, mkdtemp, readFile, rm, stat, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { epochDelta } from "../test-fixtures/workload.mjs";
import { CheckpointStore } from "./store.js";
import { decodeFile } from "./tooling.js";

const VM = "vm-a";
const PAGES = 48;
const PS = 4096;
let root: string;
let pristine: string;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "vpc-storage-inspect-"));
  pristine = join(root, "pristine");
  const store = await CheckpointStore.open(pristine, { create: true, fsync: false, pagesPerBlock: 4 });
  for (let e = 0; e < 4; e++) {
    const w = await store.beginEpoch(VM, e, { guestRamBytes: PAGES * PS, full: e === 0 });
    const d = epochDelta(5, VM, e, PAGES, PS, e === 0);
    await w.writePages(d.numbers, d.data);
    w.setDeviceState(Buffer.from(`devices ${e}`));
    await w.commit();
    await store.commitGlobal(e, [VM]);
  }
  await store.close();
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function copyOf(name: string): Promise<string> {
  const dir = join(root, name);
  await cp(pristine, dir, { recursive: true });
  return dir;
}

describe("describeChain", () => {
  it("lists the parts an epoch needs, newest first, with each file's length", async () => {
    const store = await CheckpointStore.open(pristine, { readOnly: true });
    const chain = await store.describeChain(VM, 2);
    await store.close();
    expect(chain.map((p) => [p.name, p.kind, p.parentEpoch])).toEqual([
      ["e0000000000000002", "increment", 1],
      ["e0000000000000001", "increment", 0],
      ["e0000000000000000", "full", null],
    ]);
    const devstate = chain[0]!.files.find((f) => f.name === "devstate")!;
    expect(devstate.bytes).toBe((await stat(join(chain[0]!.dir, "devstate"))).size);
    expect(chain[0]!.bytes).toBe(chain[0]!.files.reduce((s, f) => s + f.bytes, 0));
  });
});

describe("verifyEach", () => {
  it("finds nothing in an intact store and checks each shared part once", async () => {
    const store = await CheckpointStore.open(pristine, { readOnly: true });
    const r = await store.verifyEach();
    await store.close();
    expect(r.problems).toEqual([]);
    expect(r.epochs).toEqual([0, 1, 2, 3]);
    expect(r.parts).toBe(4);
  });

  it("reports every corrupt part with its file and offset instead of stopping at the first", async () => {
    const dir = await copyOf("two-faults");
    // A flipped byte inside the second block of epoch 0's pages, and epoch 3's index cut short.
    const pages = join(dir, "vms", VM, "e0000000000000000", "pages");
    const index = decodeFile(await readFile(join(dir, "vms", VM, "e0000000000000000", "index")));
    if (index.kind !== "INDX") throw new Error("not an index");
    const block = index.blocks[1]!;
    const bytes = await readFile(pages);
    bytes[block.offset + 5]! ^= 0x40;
    await writeFile(pages, bytes);
    const indexOf3 = join(dir, "vms", VM, "e0000000000000003", "index");
    await truncate(indexOf3, 20);
    const store = await CheckpointStore.open(dir, { readOnly: true });
    const r = await store.verifyEach();
    await store.close();
    expect(r.problems.map((p) => [p.code, p.path, p.offset])).toEqual([
      ["CORRUPT", pages, block.offset],
      ["CORRUPT", indexOf3, 20],
    ]);
    await expect(CheckpointStore.open(dir, { readOnly: true }).then((s) => s.verify())).rejects.toThrow(
      pages,
    );
  });
});

describe("dry runs", () => {
  it("compact --dry-run lists exactly what compact then does, and changes nothing", async () => {
    const dir = await copyOf("compact");
    const reader = await CheckpointStore.open(dir, { readOnly: true });
    const planned = await reader.compact(2, { dryRun: true });
    await reader.close();
    const store = await CheckpointStore.open(dir, { fsync: false });
    expect(await store.listEpochs()).toEqual([0, 1, 2, 3]);
    const done = await store.compact(2);
    await store.close();
    expect(planned.compacted).toEqual([VM]);
    expect(planned.removedEpochs).toEqual([0, 1]);
    expect(planned).toEqual(done);
    expect(done.removed.length).toBe(3);
  });

  it("gc --dry-run on a read-only store includes what a writable open removes", async () => {
    const dir = await copyOf("gc");
    // A part newer than every global epoch (a writer that died before commitGlobal) and a temp file.
    await cp(join(dir, "vms", VM, "e0000000000000003"), join(dir, "vms", VM, "e0000000000000009"), {
      recursive: true,
    });
    await writeFile(join(dir, "tmp", ".tmp-left-over"), "x");
    const reader = await CheckpointStore.open(dir, { readOnly: true });
    const planned = await reader.gc({ dryRun: true });
    await expect(reader.gc()).rejects.toThrow(/read-only/);
    await reader.close();
    const store = await CheckpointStore.open(dir, { fsync: false });
    const done = [...store.removedAtOpen, ...(await store.gc()).removed];
    await store.close();
    expect(planned.removed.sort()).toEqual(done.sort());
    expect(done.sort()).toEqual(
      [join(dir, "tmp", ".tmp-left-over"), join(dir, "vms", VM, "e0000000000000009")].sort(),
    );
  });
});
