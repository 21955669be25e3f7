import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { applyDelta, channelLogOf, deviceStateOf, epochDelta } from "../test-fixtures/workload.mjs";
import { StoreError } from "./errors.js";
import { CheckpointStore, type OpenOptions, type RestoreOptions } from "./store.js";

const PS = 4096;
let root: string;
let seq = 0;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), "vpc-storage-test-"));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

const fresh = (opts: OpenOptions = {}) =>
  CheckpointStore.open(join(root, `s${seq++}`), { create: true, fsync: false, ...opts });

async function expectCode(p: Promise<unknown>, code: string): Promise<StoreError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(StoreError.isInstance(e), `expected ${code}, got ${String(e)}`).toBe(true);
  expect((e as StoreError).code).toBe(code);
  return e as StoreError;
}

interface Plan {
  seed: number;
  ramPages: number;
  epochs: number;
  vms: number;
  opts: OpenOptions;
  compactAt: number;
}

/** Writes `plan.epochs` epochs through the public API; returns the model RAM of every VM per epoch. */
async function writeChain(store: CheckpointStore, plan: Plan): Promise<Map<string, Buffer[]>> {
  const models = new Map<string, Buffer[]>();
  const vmIds = Array.from({ length: plan.vms }, (_, i) => `vm${i}`);
  for (let e = 0; e < plan.epochs; e++) {
    for (const vmId of vmIds) {
      const full = e === 0;
      const ram = full ? Buffer.alloc(plan.ramPages * PS) : Buffer.from(models.get(vmId)!.at(-1)!);
      const d = epochDelta(plan.seed, vmId, e, plan.ramPages, PS, full);
      const w = await store.beginEpoch(vmId, e, { guestRamBytes: plan.ramPages * PS, full });
      if (full && plan.seed % 2 === 0) {
        // Full epochs also go through writeRange (whole-RAM source).
        applyDelta(ram, d, PS);
        await w.writeRange(ram, 0, plan.ramPages);
      } else {
        // Two batches, the second first: pages repeat across batches and the last write wins.
        const cut = Math.floor(d.numbers.length / 3);
        const tail = { numbers: d.numbers.subarray(cut), data: d.data.subarray(cut * PS) };
        const head = { numbers: d.numbers.subarray(0, cut), data: d.data.subarray(0, cut * PS) };
        await w.writePages(tail.numbers, tail.data);
        await w.writePages(Array.from(head.numbers), head.data);
        applyDelta(applyDelta(ram, tail, PS), head, PS);
      }
      w.setDeviceState(deviceStateOf(vmId, e));
      w.setChannelLog(channelLogOf(vmId, e));
      await w.commit();
      if (!models.has(vmId)) models.set(vmId, []);
      models.get(vmId)!.push(ram);
    }
    await store.commitGlobal(e, vmIds);
  }
  return models;
}

async function checkEpoch(store: CheckpointStore, models: Map<string, Buffer[]>, e: number, seed: number) {
  for (const [vmId, rams] of models) {
    const want = rams[e]!;
    const variants: RestoreOptions[] = [
      { strategy: "newest-first" },
      { strategy: "oldest-first" },
      { strategy: "newest-first", windowBytes: 0 },
      { strategy: "oldest-first", windowBytes: 0 },
      { strategy: (seed & 1) === 0 ? "newest-first" : "oldest-first", windowBytes: 5 * PS },
    ];
    for (const opts of variants) {
      const dest = join(root, `restore-${vmId}-${e}`);
      const r = await store.restoreRam(vmId, e, dest, opts);
      expect(r.bytes).toBe(want.length);
      expect((await readFile(dest)).equals(want), `${vmId}@${e} ${JSON.stringify(opts)}`).toBe(true);
      await rm(dest);
    }
    const pages = want.length / PS;
    for (const p of [0, pages - 1, (seed >>> 3) % pages]) {
      expect((await store.readPage(vmId, e, p)).equals(want.subarray(p * PS, (p + 1) * PS))).toBe(true);
    }
    expect((await store.readDeviceState(vmId, e)).equals(deviceStateOf(vmId, e))).toBe(true);
    expect((await store.readChannelLog(vmId, e)).equals(channelLogOf(vmId, e))).toBe(true);
  }
}

describe("CheckpointStore round trip", () => {
  it("restores every epoch byte for byte, before and after compaction (property)", async () => {
    const plan = fc.record({
      seed: fc.integer({ min: 0, max: 2 ** 31 }),
      ramPages: fc.integer({ min: 1, max: 80 }),
      epochs: fc.integer({ min: 1, max: 7 }),
      vms: fc.integer({ min: 1, max: 2 }),
      opts: fc.record({
        compression: fc.constantFrom("none" as const, "lz4" as const),
        pagesPerBlock: fc.constantFrom(1, 3, 16),
      }),
      compactAt: fc.integer({ min: 0, max: 6 }),
    });
    await fc.assert(
      fc.asyncProperty(plan, async (p) => {
        const store = await fresh(p.opts);
        try {
          const models = await writeChain(store, p);
          expect(await store.listEpochs()).toEqual(Array.from({ length: p.epochs }, (_, i) => i));
          for (let e = 0; e < p.epochs; e++) await checkEpoch(store, models, e, p.seed);
          await store.verify();
          const k = Math.min(p.compactAt, p.epochs - 1);
          await store.compact(k);
          const left = Array.from({ length: p.epochs - k }, (_, i) => k + i);
          expect(await store.listEpochs()).toEqual(left);
          for (const e of left) await checkEpoch(store, models, e, p.seed);
          expect((await store.info()).problems).toEqual([]);
        } finally {
          await store.close();
        }
      }),
      { numRuns: 15 },
    );
  }, 120_000);

  it("serves increments written on top of a compacted base, and reopens", async () => {
    const dir = join(root, "reopen");
    let store = await CheckpointStore.open(dir, { create: true, fsync: false });
    const plan = { seed: 5, ramPages: 40, epochs: 4, vms: 2, opts: {}, compactAt: 0 };
    const models = await writeChain(store, plan);
    const r = await store.retain({ keepLast: 2 });
    expect(r?.epoch).toBe(2);
    expect(r?.removedEpochs).toEqual([0, 1]);
    await store.close();
    store = await CheckpointStore.open(dir, { fsync: false });
    const w = await store.beginEpoch("vm0", 4, { guestRamBytes: 40 * PS, full: false });
    expect(w.parentEpoch).toBe(3);
    const page = Buffer.alloc(PS, 0xab);
    await w.writePages([39], page);
    w.setDeviceState(deviceStateOf("vm0", 4));
    w.setChannelLog(channelLogOf("vm0", 4));
    await w.commit();
    await store.commitGlobal(4, ["vm0"]);
    const want = Buffer.from(models.get("vm0")![3]!);
    page.copy(want, 39 * PS);
    models.get("vm0")![4] = want;
    models.delete("vm1");
    await checkEpoch(store, models, 4, 1);
    await store.compact(4);
    await checkEpoch(store, models, 4, 1);
    expect(await store.listEpochs()).toEqual([4]);
    const info = await store.info();
    expect(info.vms.map((v) => [v.vmId, v.parts.map((x) => x.kind)])).toEqual([["vm0", ["base"]]]);
    await store.close();
  });
});

describe("CheckpointStore lazy reads", () => {
  it("keeps serving pages after another store instance compacted the chain away", async () => {
    const writer = await fresh();
    const plan = { seed: 8, ramPages: 30, epochs: 4, vms: 1, opts: {}, compactAt: 0 };
    const want = (await writeChain(writer, plan)).get("vm0")![3]!;
    const reader = await CheckpointStore.open(writer.dir, { readOnly: true });
    expect((await reader.readPage("vm0", 3, 0)).equals(want.subarray(0, PS))).toBe(true);
    await writer.compact(3);
    expect(await readdir(join(writer.dir, "vms", "vm0"))).toEqual(["b0000000000000003"]);
    for (let p = 0; p < plan.ramPages; p++) {
      expect(
        (await reader.readPage("vm0", 3, p)).equals(want.subarray(p * PS, (p + 1) * PS)),
        `page ${p}`,
      ).toBe(true);
    }
    await reader.close();
    await writer.close();
  });
});

describe("CheckpointStore commit rules", () => {
  it("hides epochs without a global commit and removes them on the next open", async () => {
    const dir = join(root, "hide");
    const store = await CheckpointStore.open(dir, { create: true, fsync: false });
    const w = await store.beginEpoch("a", 0, { guestRamBytes: 4 * PS, full: true });
    await w.writePages([1], Buffer.alloc(PS, 1));
    await w.commit();
    expect(await store.listEpochs()).toEqual([]);
    await expectCode(store.restoreRam("a", 0, join(root, "x")), "NOT_FOUND");
    await expectCode(store.commitGlobal(0, ["a", "b"]), "NOT_FOUND");
    const open = await store.beginEpoch("b", 0, { guestRamBytes: 4 * PS, full: true });
    await open.writePages([0], Buffer.alloc(PS, 2));
    expect((await store.gc()).removed).toEqual([]);
    await store.close();
    expect(open.state).toBe("aborted");
    const again = await CheckpointStore.open(dir, { fsync: false });
    expect((await again.info()).vms).toEqual([]);
    expect(await readdir(join(dir, "vms"))).toEqual([]);
    await again.close();
  });

  it("refuses misuse with typed errors", async () => {
    const store = await fresh();
    await expectCode(store.beginEpoch("../x", 0, { guestRamBytes: PS, full: true }), "ARGUMENT");
    await expectCode(store.beginEpoch("a", -1, { guestRamBytes: PS, full: true }), "ARGUMENT");
    await expectCode(store.beginEpoch("a", 0, { guestRamBytes: PS + 1, full: true }), "ARGUMENT");
    await expectCode(store.beginEpoch("a", 1, { guestRamBytes: PS, full: false }), "ARGUMENT");
    const w = await store.beginEpoch("a", 0, { guestRamBytes: 2 * PS, full: true });
    await expectCode(store.beginEpoch("a", 0, { guestRamBytes: 2 * PS, full: true }), "STATE");
    await expectCode(w.writePages([2], Buffer.alloc(PS)), "ARGUMENT");
    await expectCode(w.writePages([0], Buffer.alloc(PS - 1)), "ARGUMENT");
    await w.commit();
    await expectCode(w.writePages([0], Buffer.alloc(PS)), "STATE");
    await store.commitGlobal(0, ["a"]);
    await expectCode(store.commitGlobal(0, ["a"]), "STATE");
    await expectCode(store.beginEpoch("a", 0, { guestRamBytes: 2 * PS, full: true }), "STATE");
    await expectCode(store.beginEpoch("a", 1, { guestRamBytes: 4 * PS, full: false }), "ARGUMENT");
    await expectCode(store.readPage("a", 0, 2), "ARGUMENT");
    await expectCode(CheckpointStore.open(store.dir), "LOCKED");
    await expectCode(CheckpointStore.open(join(root, "none")), "NOT_FOUND");
    const aborted = await store.beginEpoch("a", 1, { guestRamBytes: 2 * PS, full: false });
    await aborted.abort();
    expect((await readdir(join(store.dir, "vms", "a"))).sort()).toEqual(["e0000000000000000"]);
    await store.close();
    const ro = await CheckpointStore.open(store.dir, { readOnly: true });
    expect(await ro.listEpochs()).toEqual([0]);
    await expectCode(ro.beginEpoch("a", 1, { guestRamBytes: 2 * PS, full: false }), "STATE");
    await ro.close();
  });

  it("fails a restore over a hole in the chain, naming the missing epoch", async () => {
    const store = await fresh();
    await writeChain(store, { seed: 1, ramPages: 8, epochs: 3, vms: 1, opts: {}, compactAt: 0 });
    await rm(join(store.dir, "vms", "vm0", "e0000000000000001"), { recursive: true });
    const e = await expectCode(store.restoreRam("vm0", 2, join(root, "hole")), "CHAIN");
    expect(e).toMatchObject({ vmId: "vm0", epoch: 2, missingEpoch: 1 });
    expect(await readdir(root)).not.toContain("hole");
    const p = await expectCode(store.readPage("vm0", 2, 3), "CHAIN");
    expect(p).toMatchObject({ page: 3 });
    await writeFile(join(root, "keep"), "");
    await store.close();
  });
});
