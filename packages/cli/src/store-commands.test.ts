/** `vpc store`: over a temp store written with @vpc/storage, intact and corrupted. */
import { cp, mkdtemp, readFile, rm, stat, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CheckpointStore } from "@vpc/storage";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EXIT_FAILED, EXIT_OK, EXIT_USAGE, main } from "./cli.js";
import { hexdumpPage, parsePageList } from "./store-commands.js";

const PS = 4096;
const PAGES = 32;
let root: string;
let pristine: string;

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return {
    io: { stdout: (t: string) => out.push(t), stderr: (t: string) => err.push(t) },
    out: () => out.join(""),
    err: () => err.join(""),
  };
}

async function vpc(...args: string[]) {
  const c = capture();
  const code = await main(args, c.io);
  return { code, out: c.out(), err: c.err() };
}

const part = (dir: string, vm: string, name: string, file: string) => join(dir, "vms", vm, name, file);

/** Epoch 0 full, 1 and 2 increments, for two VMs; page p of epoch e holds byte e+1 where written. */
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "vpc-cli-store-"));
  pristine = join(root, "pristine");
  const store = await CheckpointStore.open(pristine, { create: true, fsync: false, pagesPerBlock: 4 });
  for (let e = 0; e < 3; e++) {
    for (const vm of ["vm0", "vm1"]) {
      const w = await store.beginEpoch(vm, e, { guestRamBytes: PAGES * PS, full: e === 0 });
      const pages = e === 0 ? [0, 1, 2, 3, 4, 5, 6, 7] : [e, 10 + e];
      await w.writePages(Uint32Array.from(pages), Buffer.alloc(pages.length * PS, e + 1));
      w.setDeviceState(Buffer.from(`device state ${vm} ${e}`));
      await w.commit();
    }
    await store.commitGlobal(e, ["vm0", "vm1"]);
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

describe("vpc store info", () => {
  it("shows epochs, parts, sizes, device state and chains", async () => {
    const r = await vpc("store", "info", pristine);
    expect(r.code).toBe(EXIT_OK);
    expect(r.out).toMatch(/epochs\s+0 1 2/);
    expect(r.out).toContain("vm vm1");
    expect(r.out).toMatch(/e0000000000000001\s+increment\s+0\s/);
    expect(r.out).toContain("epoch 2 vm0: e2 → e1 → e0");
    expect(r.out).toContain("manifests and chains intact");
    const j = JSON.parse((await vpc("store", "info", pristine, "--json")).out);
    const devstate = j.vms[0].parts[2].files.find((f: { name: string }) => f.name === "devstate");
    expect(devstate.bytes).toBe((await stat(part(pristine, "vm0", "e0000000000000002", "devstate"))).size);
  });

  it("exits 1 naming a manifest that fails its checksum", async () => {
    const dir = await copyOf("info-bad");
    const manifest = part(dir, "vm1", "e0000000000000001", "manifest");
    const bytes = await readFile(manifest);
    bytes[30]! ^= 1;
    await writeFile(manifest, bytes);
    const r = await vpc("store", "info", dir);
    expect(r.code).toBe(EXIT_FAILED);
    expect(r.out).toContain(manifest);
    expect(r.out).toMatch(/epoch 1 vm1: .*\[CORRUPT\]/);
  });
});

describe("vpc store verify", () => {
  it("passes an intact store", async () => {
    const r = await vpc("store", "verify", pristine);
    expect(r.code).toBe(EXIT_OK);
    expect(r.out).toMatch(/^ok\s+3 epochs, 6 parts/);
  });

  it("names the file and offset of a flipped byte and of a truncated file, and exits 1", async () => {
    const dir = await copyOf("verify-bad");
    const pages = part(dir, "vm0", "e0000000000000000", "pages");
    const bytes = await readFile(pages);
    // Header 32 bytes, then raw blocks of 4 pages: byte 100 of the second block.
    bytes[32 + 4 * PS + 100]! ^= 0xff;
    await writeFile(pages, bytes);
    const devstate = part(dir, "vm1", "e0000000000000002", "devstate");
    await truncate(devstate, 10);
    const r = await vpc("store", "verify", dir);
    expect(r.code).toBe(EXIT_FAILED);
    expect(r.out).toMatch(
      new RegExp(`^CORRUPT  ${pages}: block 1 checksum mismatch at offset ${32 + 4 * PS}$`, "m"),
    );
    expect(r.out).toMatch(new RegExp(`^CORRUPT  ${devstate}: .* at offset 10$`, "m"));
    expect(r.out).toMatch(/FAILED\s+2 problems/);
    const j = JSON.parse((await vpc("store", "verify", dir, "--json")).out);
    expect(j.ok).toBe(false);
    expect(j.problems.map((p: { path: string }) => p.path)).toEqual([pages, devstate]);
  });

  it("fails clearly on a directory that is no store", async () => {
    const r = await vpc("store", "verify", root);
    expect(r.code).toBe(EXIT_FAILED);
    expect(r.err).toContain(`vpc store verify: ${root} is not a checkpoint store [NOT_FOUND]`);
  });
});

describe("vpc store decode and encode", () => {
  it("decodes an epoch in readable form and as JSON", async () => {
    const r = await vpc("store", "decode", pristine, "--epoch", "2");
    expect(r.code).toBe(EXIT_OK);
    expect(r.out).toContain("vm vm0: e0000000000000002 (increment over epoch 1)");
    expect(r.out).toContain("2 pages stored in 1 blocks of up to 4 (raw)");
    expect(r.out).toContain("page 2: slot 0");
    const j = JSON.parse(
      (await vpc("store", "decode", pristine, "--epoch", "1", "--vm", "vm1", "--json")).out,
    );
    expect(j.vms.map((v: { vmId: string }) => v.vmId)).toEqual(["vm1"]);
    expect(Buffer.from(j.vms[0].files.devstate.payloadBase64, "base64").toString()).toBe(
      "device state vm1 1",
    );
  });

  it("dumps chosen pages through the chain and writes a raw image", async () => {
    const r = await vpc("store", "decode", pristine, "--epoch", "2", "--vm", "vm0", "--pages", "2,12");
    expect(r.code).toBe(EXIT_OK);
    // Page 2 was written again at epoch 2 (byte 3); page 12 at epoch 2 as well; page 11 at epoch 1.
    expect(r.out).toContain("page 2 (guest offset 0x2000)\n00000000  03 03 03 03");
    expect(r.out).toContain("page 12 (guest offset 0xc000)");
    const raw = join(root, "vm0.raw");
    expect((await vpc("store", "decode", pristine, "--epoch", "2", "--vm", "vm0", "--raw", raw)).code).toBe(
      EXIT_OK,
    );
    const ram = await readFile(raw);
    expect([ram[0], ram[2 * PS], ram[11 * PS], ram[12 * PS], ram[20 * PS]]).toEqual([1, 3, 2, 3, 0]);
  });

  it("round-trips a file through decode and encode, and encodes an edited one", async () => {
    const index = part(pristine, "vm0", "e0000000000000001", "index");
    const decoded = await vpc("store", "decode", index);
    expect(decoded.code).toBe(EXIT_OK);
    const json = join(root, "index.json");
    await writeFile(json, decoded.out);
    const out = join(root, "index.bin");
    const r = await vpc("store", "encode", json, "--out", out);
    expect(r.code).toBe(EXIT_OK);
    expect((await readFile(out)).equals(await readFile(index))).toBe(true);
    // A crafted input: an epoch number that does not match the part, re-encoded with a valid trailer.
    const edited = JSON.parse(decoded.out);
    edited.epoch = 7;
    await writeFile(json, JSON.stringify(edited));
    expect((await vpc("store", "encode", json, "--out", out)).code).toBe(EXIT_OK);
    expect(JSON.parse((await vpc("store", "decode", out)).out).epoch).toBe(7);
  });

  it("rejects a corrupt file and bad JSON with a clear message", async () => {
    const bad = join(root, "bad-index");
    const bytes = await readFile(part(pristine, "vm0", "e0000000000000001", "index"));
    bytes[20]! ^= 1;
    await writeFile(bad, bytes);
    const r = await vpc("store", "decode", bad);
    expect(r.code).toBe(EXIT_FAILED);
    expect(r.err).toMatch(new RegExp(`^vpc store decode: ${bad}.*\\[CORRUPT\\]`));
    const notJson = join(root, "not.json");
    await writeFile(notJson, "{");
    const e = await vpc("store", "encode", notJson, "--out", join(root, "x"));
    expect(e.code).toBe(EXIT_USAGE);
    expect(e.err).toContain(`${notJson}: not JSON`);
    await writeFile(notJson, JSON.stringify({ kind: "NOPE" }));
    expect((await vpc("store", "encode", notJson, "--out", join(root, "x"))).err).toContain(
      'unknown kind "NOPE"',
    );
  });
});

describe("vpc store gc and compact", () => {
  it("compact --dry-run prints what compact then removes, and changes nothing", async () => {
    const dir = await copyOf("compact");
    const plan = JSON.parse((await vpc("store", "compact", dir, "2", "--dry-run", "--json")).out);
    expect(plan).toMatchObject({ dryRun: true, epoch: 2, compacted: ["vm0", "vm1"], removedEpochs: [0, 1] });
    expect((await vpc("store", "verify", dir)).out).toMatch(/^ok\s+3 epochs, 6 parts/);
    const done = JSON.parse((await vpc("store", "compact", dir, "2", "--json")).out);
    expect(done.removed).toEqual(plan.removed);
    expect((await vpc("store", "info", dir)).out).toContain("epoch 2 vm0: b2");
    expect((await vpc("store", "verify", dir)).out).toMatch(/^ok\s+1 epochs, 2 parts/);
  });

  it("gc --dry-run lists a dead writer's leftovers; gc removes them", async () => {
    const dir = await copyOf("gc");
    const leftover = join(dir, "vms", "vm0", "e0000000000000005");
    await cp(join(dir, "vms", "vm0", "e0000000000000002"), leftover, { recursive: true });
    const plan = await vpc("store", "gc", dir, "--dry-run");
    expect(plan.out).toBe(`would remove 1 entries:\n  ${leftover}\n`);
    await stat(leftover);
    const done = await vpc("store", "gc", dir);
    expect(done.out).toBe(`removed 1 entries:\n  ${leftover}\n`);
    await expect(stat(leftover)).rejects.toThrow();
  });
});

describe("arguments", () => {
  it("gives vpc's own messages for bad arguments", async () => {
    for (const [args, message] of [
      [["store"], "missing command"],
      [["store", "fix", "d"], 'unknown command "fix"'],
      [["store", "info", "d", "--nope"], "unknown option --nope"],
      [["store", "verify", "d", "--epoch"], "--epoch needs a value"],
      [["store", "verify", "d", "--epoch", "x"], "--epoch must be an epoch number"],
      [["store", "compact", "d"], "compact: give DIR and EPOCH"],
      [["store", "decode", "d", "--pages", "3"], "--pages and --raw need --epoch E and one --vm ID"],
      [["store", "info", "d", "--dry-run"], "--dry-run is for gc and compact"],
    ] as const) {
      const r = await vpc(...args);
      expect(r.code, args.join(" ")).toBe(EXIT_USAGE);
      expect(r.err, args.join(" ")).toContain(`vpc store: ${message}`);
    }
  });

  it("parses page lists and folds repeated hex lines", () => {
    expect(parsePageList("3,0-2,2")).toEqual([0, 1, 2, 3]);
    expect(() => parsePageList("4-2")).toThrow(/not a page/);
    const dump = hexdumpPage(1, Buffer.alloc(64, 0x41));
    expect(dump).toBe(
      "page 1 (guest offset 0x40)\n" +
        "00000000  41 41 41 41 41 41 41 41  41 41 41 41 41 41 41 41  |AAAAAAAAAAAAAAAA|\n*\n" +
        "00000030  41 41 41 41 41 41 41 41  41 41 41 41 41 41 41 41  |AAAAAAAAAAAAAAAA|\n",
    );
  });
});
