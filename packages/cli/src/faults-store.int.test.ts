/**
 * `vpc faults store` on a real store written through @vpc/storage's writer (no VM: the campaign
 * only reads the store): a few epochs of two VMs, increments over a full epoch, LZ4 blocks.
 */
import { createHash } from "node:crypto";
import { cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CheckpointStore } from "@vpc/storage";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EXIT_FAILED, EXIT_OK, main } from "./cli.js";
import type { OutcomeRow, TrialResult } from "./store-damage.js";

const PS = 4096;
const PAGES = 64;
const VMS = ["vm0", "vm1"];
let root: string;
let storeDir: string;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "vpc-faults-int-"));
  storeDir = join(root, "store");
  const store = await CheckpointStore.open(storeDir, { create: true, fsync: false, compression: "lz4" });
  const rams = new Map(VMS.map((v) => [v, Buffer.alloc(PAGES * PS)]));
  for (let e = 0; e < 4; e++) {
    for (const [vm, ram] of rams) {
      const w = await store.beginEpoch(vm, e, { guestRamBytes: ram.length, full: e === 0 });
      if (e === 0) {
        for (let p = 0; p < PAGES; p += 3) ram.fill(`${vm} page ${p} `, p * PS, (p + 1) * PS);
        await w.writeRange(ram, 0, PAGES);
      } else {
        const pages = [e, 20 + e, 40 + 2 * e];
        const data = Buffer.concat(pages.map((p) => Buffer.alloc(PS, `${vm} epoch ${e} page ${p}`)));
        await w.writePages(pages, data);
      }
      w.setDeviceState(Buffer.from(`device state of ${vm} at ${e}`));
      w.setChannelLog(Buffer.from(`channel log of ${vm} at ${e}`));
      await w.commit();
    }
    await store.commitGlobal(e, VMS);
  }
  await store.close();
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function vpc(...args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, { stdout: (t) => out.push(t), stderr: (t) => err.push(t) });
  return { code, out: out.join(""), err: err.join("") };
}

/** Every file of the store and its contents' hash, to prove the campaign changed nothing. */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue;
    const p = join(e.parentPath, e.name);
    out[p] = createHash("sha256")
      .update(await readFile(p))
      .digest("hex");
  }
  return out;
}

describe("vpc faults store", () => {
  it("damages copies of a store: every damage detected, reported or harmless, none undetected", async () => {
    const before = await snapshot(storeDir);
    const scratch = join(root, "scratch");
    await rm(scratch, { recursive: true, force: true });
    await mkdir(scratch);
    const r = await vpc(
      "faults",
      "store",
      "--store",
      storeDir,
      "--trials",
      "24",
      "--seed",
      "7",
      "--scratch",
      scratch,
      "--json",
    );
    expect(r.err).toBe("");
    const report = JSON.parse(r.out) as {
      ok: boolean;
      results: TrialResult[];
      rows: OutcomeRow[];
      newestEpoch: number;
    };
    expect(report.newestEpoch).toBe(3);
    expect(report.results).toHaveLength(24);
    const outcomes = report.results.map((t) => t.outcome);
    expect(outcomes.filter((o) => o === "undetected")).toEqual([]);
    expect(
      report.results.filter((t) => ["silently-older", "unclear-error"].includes(t.outcome)),
      "failing trials",
    ).toEqual([]);
    expect(report.ok).toBe(true);
    expect(r.code).toBe(EXIT_OK);
    // Most damages are refused outright; 24 trials reach at least 8 of the file kinds × targets.
    expect(outcomes.filter((o) => o === "detected").length).toBeGreaterThan(12);
    expect(report.rows.length).toBeGreaterThanOrEqual(8);
    // The user's store is untouched, and no copy is left in the scratch directory.
    expect(await snapshot(storeDir)).toEqual(before);
    expect(await readdir(scratch)).toEqual([]);
  }, 60_000);

  it("prints the table, and a garbage newest global manifest is restored around with a notice", async () => {
    const r = await vpc("faults", "store", "--store", storeDir, "--trials", "3", "--seed", "1");
    expect(r.code).toBe(EXIT_OK);
    expect(r.out).toMatch(/^\| file \(target\) +\| injected \| detected \|/m);
    expect(r.out).toMatch(/^\| total +\| +3 \|/m);
    expect(r.out).toContain("seed 1");
    // verify and restore on a copy with garbage in place of the newest epoch's global manifest.
    const copy = join(root, "garbage-global");
    await cp(storeDir, copy, { recursive: true });
    const garbage = join(copy, "epochs", "0000000000000003.epoch");
    await writeFile(garbage, "garbage ".repeat(8));
    const verify = await vpc("store", "verify", copy);
    expect(verify.code).toBe(EXIT_FAILED);
    expect(verify.out).toMatch(new RegExp(`^CORRUPT +${garbage}`, "m"));
    const store = await CheckpointStore.open(copy, { readOnly: true });
    const newest = await store.newestEpoch("vm0");
    await store.close();
    expect(newest.epoch).toBe(2);
    expect(newest.skipped.map((s) => [s.epoch, s.path])).toEqual([[3, garbage]]);
    // A campaign needs an intact store to compare against: it refuses this one, naming the file.
    const refused = await vpc("faults", "store", "--store", copy, "--trials", "1", "--seed", "1");
    expect(refused.code).toBe(EXIT_FAILED);
    expect(refused.err).toContain(garbage);
    expect(refused.err).toContain("run vpc store verify");
  }, 60_000);
});
