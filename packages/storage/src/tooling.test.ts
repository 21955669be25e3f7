import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { epochDelta } from "../test-fixtures/workload.mjs";
import { StoreError } from "./errors.js";
import { CheckpointStore } from "./store.js";
import { decodeFile, encodeFile } from "./tooling.js";

let root: string;

async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await walk(p)));
    else if (e.name !== "LOCK") out.push(p);
  }
  return out;
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "vpc-storage-tool-"));
  const store = await CheckpointStore.open(join(root, "s"), {
    create: true,
    fsync: false,
    compression: "lz4",
  });
  for (let e = 0; e < 3; e++) {
    const d = epochDelta(3, "vm-x", e, 40, 4096, e === 0);
    const w = await store.beginEpoch("vm-x", e, { guestRamBytes: 40 * 4096, full: e === 0 });
    await w.writePages(d.numbers, d.data);
    w.setDeviceState(Buffer.from([e, 1, 2, 3]));
    await w.commit();
    await store.commitGlobal(e, ["vm-x"]);
  }
  await store.compact(1);
  await store.close();
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("decodeFile / encodeFile", () => {
  it("round-trips every file of a store through JSON byte for byte", async () => {
    const kinds = new Set<string>();
    for (const path of await walk(join(root, "s"))) {
      const bytes = await readFile(path);
      const decoded = decodeFile(bytes, path);
      kinds.add(decoded.kind);
      const json = JSON.parse(JSON.stringify(decoded));
      expect(encodeFile(json).equals(bytes), path).toBe(true);
    }
    expect([...kinds].sort()).toEqual(["CHAN", "DEVS", "EPMF", "INDX", "PAGE", "STOR", "VMMF"]);
  });

  it("shows what it decodes and refuses foreign or damaged files", async () => {
    const files = await walk(join(root, "s"));
    const base = files.find((f) => f.endsWith("b0000000000000001/manifest"))!;
    expect(decodeFile(await readFile(base))).toMatchObject({
      kind: "VMMF",
      full: true,
      compacted: true,
      epoch: 1,
    });
    expect(() => decodeFile(Buffer.from("hello world"))).toThrow(/unknown magic/);
    const bytes = await readFile(base);
    bytes[30]! ^= 1;
    const err = (() => {
      try {
        decodeFile(bytes, "m");
      } catch (e) {
        return e;
      }
    })();
    expect(StoreError.isInstance(err) && err.code === "CORRUPT" && err.path === "m").toBe(true);
  });
});
