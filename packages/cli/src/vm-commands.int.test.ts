import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "./cli.js";

// Real QEMU (TCG) with the agent: `vpc checkpoint` into a store, then `vpc restore` from it.
describe("vpc checkpoint + vpc restore", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "vpc-cli-store-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("takes vpc checkpoints, restores the last one with memcheck clean, and warns when it must skip one", async () => {
    const shmBefore = new Set(await readdir("/dev/shm"));
    const store = join(dir, "store");
    const metrics = join(dir, "metrics.jsonl");
    const out: string[] = [];
    const err: string[] = [];
    const io = { stdout: (t: string) => out.push(t), stderr: (t: string) => err.push(t) };
    const code = await main(
      [
        "checkpoint",
        "--store",
        store,
        "--engine",
        "vpc",
        "--count",
        "3",
        "--interval-ms",
        "1000",
        "--metrics",
        metrics,
      ],
      io,
    );
    expect(err.join("")).toBe("");
    expect(code).toBe(0);
    const records = (await readFile(metrics, "utf8"))
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(records.map((r) => [r.ok, r.epoch])).toEqual([
      [true, 0],
      [true, 1],
      [true, 2],
    ]);
    expect(out.join("")).toContain("epoch 2  pause");

    const rout: string[] = [];
    const rerr: string[] = [];
    const rcode = await main(
      ["restore", "--store", store, "--json", "--exec", "sleep 2; cat /run/vpc-memcheck"],
      { stdout: (t) => rout.push(t), stderr: (t) => rerr.push(t) },
    );
    expect({ rcode, stderr: rerr.join("") }).toEqual({ rcode: 0, stderr: "" });
    const result = JSON.parse(rout.join(""));
    expect(result.epoch).toBe(2);
    expect(result.engine).toContain("vpc");
    expect(result.exec.stdout).toMatch(/verifies=\d+ failures=0 /);

    // Garbage in place of epoch 2's global manifest: the restore takes epoch 1 and says why.
    const garbage = join(store, "epochs", "0000000000000002.epoch");
    await writeFile(garbage, "not a global manifest\n");
    const gout: string[] = [];
    const gerr: string[] = [];
    const gcode = await main(
      ["restore", "--store", store, "--json", "--exec", "sleep 2; cat /run/vpc-memcheck"],
      { stdout: (t) => gout.push(t), stderr: (t) => gerr.push(t) },
    );
    expect(gerr.join("")).toBe(
      `vpc restore: warning: skipped epoch 2, restoring epoch 1: its global manifest fails its check: ${garbage}: bad magic (expected VPC.EPMF) at offset 0\n`,
    );
    expect(gcode).toBe(0);
    const older = JSON.parse(gout.join(""));
    expect(older.epoch).toBe(1);
    expect(older.skipped).toEqual([{ epoch: 2, path: garbage, reason: expect.stringContaining(garbage) }]);
    expect(older.exec.stdout).toMatch(/verifies=\d+ failures=0 /);
    const leftovers = (await readdir("/dev/shm")).filter((f) => !shmBefore.has(f) && f.startsWith("vpc-"));
    expect(leftovers).toEqual([]);
  });
});
