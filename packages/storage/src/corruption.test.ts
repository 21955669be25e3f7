import { cp, mkdtemp, readdir, readFile, rm, stat, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applyDelta, deviceStateOf, epochDelta, prng } from "../test-fixtures/workload.mjs";
import { StoreError } from "./errors.js";
import { CheckpointStore } from "./store.js";

const PS = 4096;
const PAGES = 48;
const VM = "vm0";
let root: string;
let pristine: string;
const models: Buffer[] = [];

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await listFiles(p)));
    else if (e.name !== "LOCK") out.push(p);
  }
  return out.sort();
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "vpc-storage-corrupt-"));
  pristine = join(root, "pristine");
  const store = await CheckpointStore.open(pristine, {
    create: true,
    fsync: false,
    compression: "lz4",
    pagesPerBlock: 4,
  });
  for (let e = 0; e < 2; e++) {
    const d = epochDelta(11, VM, e, PAGES, PS, e === 0);
    const w = await store.beginEpoch(VM, e, { guestRamBytes: PAGES * PS, full: e === 0 });
    await w.writePages(d.numbers, d.data);
    w.setDeviceState(deviceStateOf(VM, e));
    w.setChannelLog(Buffer.from(`chan ${e}`));
    await w.commit();
    await store.commitGlobal(e, [VM]);
    models.push(applyDelta(e === 0 ? Buffer.alloc(PAGES * PS) : Buffer.from(models[0]!), d, PS));
  }
  await store.close();
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** Every read the store offers, for both epochs. Each either fails with a store error or returns true data. */
async function exercise(store: CheckpointStore, dest: string): Promise<StoreError[]> {
  const errors: StoreError[] = [];
  const attempt = async (fn: () => Promise<void>) => {
    try {
      await fn();
    } catch (e) {
      if (!StoreError.isInstance(e)) throw e;
      errors.push(e);
    }
  };
  for (const e of [0, 1]) {
    await attempt(async () => void (await store.verify(e)));
    for (const strategy of ["newest-first", "oldest-first"] as const) {
      await attempt(async () => {
        await store.restoreRam(VM, e, dest, { strategy });
        expect((await readFile(dest)).equals(models[e]!)).toBe(true);
        await rm(dest);
      });
      await expect(stat(dest)).rejects.toThrow();
    }
    await attempt(async () =>
      expect((await store.readDeviceState(VM, e)).equals(deviceStateOf(VM, e))).toBe(true),
    );
    await attempt(async () =>
      expect((await store.readChannelLog(VM, e)).equals(Buffer.from(`chan ${e}`))).toBe(true),
    );
    for (let p = 0; p < PAGES; p += 5) {
      await attempt(async () => {
        expect((await store.readPage(VM, e, p)).equals(models[e]!.subarray(p * PS, (p + 1) * PS))).toBe(true);
      });
    }
  }
  return errors;
}

describe("corruption", () => {
  it("detects bit flips and truncation in every kind of file, naming file and offset", async () => {
    const files = (await listFiles(pristine)).map((f) => relative(pristine, f));
    // STORE, 2 global manifests and 5 files in each of 2 parts.
    expect(files).toHaveLength(13);
    const rand = prng(99);
    let n = 0;
    for (const file of files) {
      const size = (await stat(join(pristine, file))).size;
      const mutations = [
        ...[0, 1, 2].map(() => ({ flip: Math.floor(rand() * size) })),
        { flip: size - 1 },
        { cut: 0 },
        { cut: Math.floor(rand() * size) },
        { cut: size - 1 },
      ];
      for (const m of mutations) {
        const dir = join(root, `case${n++}`);
        await cp(pristine, dir, { recursive: true });
        const target = join(dir, file);
        if ("flip" in m) {
          const bytes = await readFile(target);
          bytes[m.flip]! ^= 1 << Math.floor(rand() * 8);
          await writeFile(target, bytes);
        } else {
          await truncate(target, m.cut);
        }
        const label = `${file} ${JSON.stringify(m)}`;
        if (file === "STORE") {
          const err = await CheckpointStore.open(dir).catch((e: unknown) => e as StoreError);
          expect(StoreError.isInstance(err), label).toBe(true);
          expect((err as StoreError).path).toBe(target);
          await rm(dir, { recursive: true });
          continue;
        }
        // A writable open must not delete anything because of corruption.
        const before = await listFiles(dir);
        await (await CheckpointStore.open(dir, { fsync: false })).close();
        expect(await listFiles(dir), label).toEqual(before);
        const store = await CheckpointStore.open(dir, { readOnly: true });
        const errors = await exercise(store, join(root, "restored.ram"));
        await store.close();
        expect(errors.length, `${label}: not detected`).toBeGreaterThan(0);
        for (const e of errors) {
          expect(["CORRUPT", "VERSION"], `${label}: ${e.message}`).toContain(e.code);
          expect(e.path, `${label}: ${e.message}`).toBe(target);
          expect(e.offset, label).toBeGreaterThanOrEqual(0);
          expect(e.offset!, label).toBeLessThanOrEqual(size);
          expect(e.message).toContain(target);
        }
        await rm(dir, { recursive: true });
      }
    }
  }, 120_000);
});
