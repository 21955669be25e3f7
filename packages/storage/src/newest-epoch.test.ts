import { cp, mkdtemp, rm, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StoreError } from "./errors.js";
import { CheckpointStore } from "./store.js";

const PS = 4096;
const PAGES = 8;
let root: string;
let pristine: string;
let n = 0;

const epochFile = (dir: string, e: number): string =>
  join(dir, "epochs", `${String(e).padStart(16, "0")}.epoch`);
const partDir = (dir: string, vm: string, e: number): string =>
  join(dir, "vms", vm, `e${String(e).padStart(16, "0")}`);

/** Epochs 0-2 hold vm0 and vm1, epoch 3 only vm0; each VM an increment chain over a full epoch 0. */
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "vpc-storage-newest-"));
  pristine = join(root, "pristine");
  const store = await CheckpointStore.open(pristine, { create: true, fsync: false });
  for (let e = 0; e < 4; e++) {
    const vms = e < 3 ? ["vm0", "vm1"] : ["vm0"];
    for (const vm of vms) {
      const w = await store.beginEpoch(vm, e, { guestRamBytes: PAGES * PS, full: e === 0 });
      await w.writePages([e], Buffer.alloc(PS, e + 1));
      w.setDeviceState(Buffer.from(`${vm} ${e}`));
      await w.commit();
    }
    await store.commitGlobal(e, vms);
  }
  await store.close();
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function copy(): Promise<string> {
  const dir = join(root, `copy${n++}`);
  await cp(pristine, dir, { recursive: true });
  return dir;
}

async function failure(p: Promise<unknown>): Promise<StoreError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(StoreError.isInstance(e), String(e)).toBe(true);
  return e as StoreError;
}

describe("newestEpoch", () => {
  it("is the newest committed epoch (holding the VM when one is named), nothing skipped", async () => {
    const store = await CheckpointStore.open(pristine, { readOnly: true });
    expect(await store.newestEpoch()).toEqual({ epoch: 3, skipped: [] });
    expect(await store.newestEpoch("vm0")).toEqual({ epoch: 3, skipped: [] });
    expect(await store.newestEpoch("vm1")).toEqual({ epoch: 2, skipped: [] });
    expect((await failure(store.newestEpoch("vm9"))).code).toBe("NOT_FOUND");
    await store.close();
  });

  it("names a garbage global manifest it passed over, and verify reports it as an error", async () => {
    const dir = await copy();
    const garbage = epochFile(dir, 3);
    await writeFile(garbage, "not a manifest at all, just text that someone wrote here");
    const store = await CheckpointStore.open(dir, { readOnly: true });
    const r = await store.newestEpoch("vm0");
    expect(r.epoch).toBe(2);
    expect(r.skipped).toHaveLength(1);
    expect(r.skipped[0]).toMatchObject({ epoch: 3, path: garbage });
    expect(r.skipped[0]!.reason).toContain(garbage);
    expect(r.skipped[0]!.reason).toMatch(/^its global manifest fails its check: .* at offset \d+$/);
    // The epoch might have held vm1 too: nobody can tell, so it is reported for vm1 as well.
    expect((await store.newestEpoch("vm1")).skipped.map((s) => s.epoch)).toEqual([3]);
    const v = await store.verifyEach();
    expect(v.problems).toHaveLength(1);
    expect(v.problems[0]).toMatchObject({ code: "CORRUPT", path: garbage, epoch: 3 });
    await store.close();
  });

  it("names the parts of an epoch whose global manifest is gone", async () => {
    const dir = await copy();
    await unlink(epochFile(dir, 3));
    const store = await CheckpointStore.open(dir, { readOnly: true });
    const r = await store.newestEpoch("vm0");
    expect(r.epoch).toBe(2);
    expect(r.skipped).toEqual([
      {
        epoch: 3,
        path: partDir(dir, "vm0", 3),
        reason: expect.stringContaining(epochFile(dir, 3)) as string,
      },
    ]);
    // vm1 wrote no part of epoch 3: nothing of it was passed over.
    expect(await store.newestEpoch("vm1")).toEqual({ epoch: 2, skipped: [] });
    await store.close();
  });
});

describe("errors name the file", () => {
  it("a part's deleted manifest, at the top of the chain and below it", async () => {
    const dir = await copy();
    const top = join(partDir(dir, "vm0", 3), "manifest");
    const parent = join(partDir(dir, "vm1", 1), "manifest");
    await unlink(top);
    await unlink(parent);
    const store = await CheckpointStore.open(dir, { readOnly: true });
    const e1 = await failure(store.restoreRam("vm0", 3, join(dir, "ram")));
    expect(e1).toMatchObject({ code: "CHAIN", path: top });
    expect(e1.message).toContain(`${top} does not exist`);
    const e2 = await failure(store.readDeviceState("vm1", 2));
    expect(e2).toMatchObject({ code: "CHAIN", path: parent });
    expect((await store.verifyEach()).problems.map((p) => p.path).sort()).toEqual(
      [top, parent, parent].sort(),
    );
    await store.close();
  });

  it("a deleted store marker", async () => {
    const dir = await copy();
    await unlink(join(dir, "STORE"));
    const e = await failure(CheckpointStore.open(dir, { readOnly: true }));
    expect(e).toMatchObject({ code: "NOT_FOUND", path: join(dir, "STORE") });
    expect(e.message).toContain("no store marker");
  });
});
