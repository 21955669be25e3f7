/**
 * Crash safety: a child process (test-fixtures/crash-child.mjs, against the built dist/) writes,
 * commits and retains epochs of two VMs and is killed with SIGKILL at a random moment, many times over
 * the same store. After every kill the store must open, every listed epoch must restore exactly, and
 * nothing uncommitted may be visible or left behind. STORAGE_CRASH_RUNS sets the number of kills.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applyDelta, channelLogOf, deviceStateOf, epochDelta, prng } from "../test-fixtures/workload.mjs";
import { CheckpointStore } from "./store.js";

const here = dirname(fileURLToPath(import.meta.url));
const child = join(here, "..", "test-fixtures", "crash-child.mjs");
const RUNS = Number(process.env.STORAGE_CRASH_RUNS ?? 30);
const SEED = 4242;
const PAGES = 128;
const PS = 4096;
const VMS = ["vm-a", "vm-b"];
let root: string;
const live = new Set<ChildProcess>();

beforeAll(async () => {
  if (!existsSync(join(here, "..", "dist", "index.js")))
    throw new Error("build @vpc/storage first (npm run build)");
  root = await mkdtemp(join(tmpdir(), "vpc-storage-crash-"));
});

afterAll(async () => {
  for (const c of live) c.kill("SIGKILL");
  await rm(root, { recursive: true, force: true });
});

/** RAM of `vmId` at each epoch 0..upto, replaying the child's deterministic workload. */
function model(vmId: string, upto: number): Buffer[] {
  const out: Buffer[] = [];
  let ram: Buffer = Buffer.alloc(PAGES * PS);
  for (let e = 0; e <= upto; e++) {
    ram = applyDelta(Buffer.from(ram), epochDelta(SEED, vmId, e, PAGES, PS, e === 0), PS);
    out.push(ram);
  }
  return out;
}

async function tempEntries(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    if (e.name.startsWith(".tmp-")) out.push(join(dir, e.name));
    else if (e.isDirectory()) out.push(...(await tempEntries(join(dir, e.name))));
  }
  return out;
}

/** Runs the child until it has been up for `delayMs` after opening the store, then SIGKILLs it. */
function runAndKill(dir: string, delayMs: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [child, dir, String(SEED), String(PAGES)], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    live.add(c);
    let out = "";
    let err = "";
    let timer: NodeJS.Timeout | undefined;
    c.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      if (timer === undefined && out.includes("ready\n"))
        timer = setTimeout(() => c.kill("SIGKILL"), delayMs);
    });
    c.stderr!.on("data", (d: Buffer) => {
      err += d.toString();
    });
    c.on("error", reject);
    c.on("exit", (code, signal) => {
      live.delete(c);
      clearTimeout(timer);
      if (signal !== "SIGKILL") reject(new Error(`child exited with ${code}: ${err}`));
      else resolve(out.split("\n").filter(Boolean));
    });
  });
}

describe("crash safety", () => {
  it(`survives ${RUNS} SIGKILLs at random points`, async () => {
    const dir = join(root, "store");
    const rand = prng(7);
    let lastReported = -1;
    let midEpochKills = 0;
    for (let run = 0; run < RUNS; run++) {
      const lines = await runAndKill(dir, Math.floor(rand() * 250));
      const committed = lines.filter((l) => l.startsWith("committed ")).map((l) => Number(l.slice(10)));
      const begun = lines.filter((l) => l.startsWith("begin ")).map((l) => Number(l.slice(6)));
      if (begun.length > committed.length) midEpochKills++;
      lastReported = committed.at(-1) ?? lastReported;
      const maxBegun = begun.at(-1) ?? lastReported;

      const store = await CheckpointStore.open(dir, { fsync: false });
      try {
        const epochs = await store.listEpochs();
        if (lastReported >= 0) expect(epochs.length).toBeGreaterThan(0);
        const newest = epochs.at(-1) ?? -1;
        // Everything reported committed is there; nothing beyond what was begun is.
        expect(newest).toBeGreaterThanOrEqual(lastReported);
        expect(newest).toBeLessThanOrEqual(maxBegun);
        lastReported = newest;
        for (let i = 1; i < epochs.length; i++) expect(epochs[i]).toBe(epochs[i - 1]! + 1);
        // Open removed leftovers: no temp entries, no parts newer than the newest epoch.
        expect(await tempEntries(dir)).toEqual([]);
        const info = await store.info();
        expect(info.problems).toEqual([]);
        for (const vm of info.vms) for (const p of vm.parts) expect(p.epoch).toBeLessThanOrEqual(newest);
        for (const vmId of VMS) {
          if (newest < 0) break;
          const rams = model(vmId, newest);
          for (const e of epochs) {
            const dest = join(root, "restored.ram");
            await store.restoreRam(vmId, e, dest);
            expect((await readFile(dest)).equals(rams[e]!), `${vmId}@${e} after run ${run}`).toBe(true);
            expect((await store.readDeviceState(vmId, e)).equals(deviceStateOf(vmId, e))).toBe(true);
            expect((await store.readChannelLog(vmId, e)).equals(channelLogOf(vmId, e))).toBe(true);
            await rm(dest);
          }
        }
      } finally {
        await store.close();
      }
    }
    // The random kill points must have hit the middle of epochs, not only idle moments.
    expect(midEpochKills).toBeGreaterThan(RUNS / 3);
    // Retention (after epochs 3, 7, …) must have run at least once.
    expect(lastReported).toBeGreaterThanOrEqual(4);
    console.log(`crash test: ${RUNS} kills, ${midEpochKills} mid-epoch, newest epoch ${lastReported}`);
  }, 300_000);
});
