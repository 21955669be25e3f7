import { readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { PageSet } from "@vpc/pageset";
import { afterEach, describe, expect, it } from "vitest";
import { Harness } from "./internal/harness.js";
import type { CheckpointPlan, TrackingMode } from "./protocol.js";

const PAGES = 4096; // 16 MiB
const PAGE = 4096;

let harness: Harness | undefined;
afterEach(async () => {
  await harness?.close();
  harness = undefined;
});

/** Every third page of the first half: the rest of RAM stays a hole (never written). */
function touchedBeforeCheckpoint(): number[] {
  return Array.from({ length: PAGES / 6 }, (_, i) => i * 3);
}

/** Reads every staged slot until the saver is done; returns page → saved bytes. */
async function drainSave(h: Harness): Promise<Map<number, Buffer>> {
  const c = h.client;
  const saved = new Map<number, Buffer>();
  for (;;) {
    const batch = await c.readStaged();
    batch.pages.forEach((page, i) => {
      expect(saved.has(page)).toBe(false);
      saved.set(page, batch.data.subarray(i * PAGE, (i + 1) * PAGE));
    });
    if (batch.pages.length) await c.releaseStaged(batch);
    const st = await c.saveStatus();
    if (!st.saving && st.inUse === 0 && batch.pages.length === 0) return saved;
  }
}

function differing(saved: Map<number, Buffer>, ref: Buffer): number[] {
  const bad: number[] = [];
  for (const [p, bytes] of saved) if (bytes.compare(ref, p * PAGE, (p + 1) * PAGE) !== 0) bad.push(p);
  return bad;
}

async function pausedCopy(h: Harness, name: string): Promise<Buffer> {
  const path = join(h.dir.dir, name);
  await h.cmd(`dump ${path}`);
  const ref = await readFile(path);
  await rm(path);
  return ref;
}

describe.each<TrackingMode>(["sync", "async"])("COW over pages that were holes (%s mode)", (mode) => {
  it.each<CheckpointPlan>(["protect-all", "predict"])(
    "%s: holes written right after resume are saved as they were at the pause (zeros)",
    { timeout: 60_000 },
    async (plan) => {
      harness = await Harness.start(PAGES);
      const h = harness;
      const c = h.client;
      // Staging takes every COW fault: the guest's writes all land before the saver starts.
      await c.attach({ memPath: h.ramPath, mode, stagingSlots: PAGES });
      await h.write(1, touchedBeforeCheckpoint());
      // The full first checkpoint protects every page, holes included.
      const predicted = new PageSet(PAGES);
      for (let p = 0; p < PAGES; p += 5) predicted.add(p);
      const reply = await c.checkpoint({ plan, full: true }, plan === "predict" ? predicted : undefined);
      expect(reply.toSave).toBe(PAGES);
      const ref = await pausedCopy(h, "ref-full");
      // Resume: the guest writes holes (and some data pages) before the saver reaches them.
      const holes = Array.from({ length: PAGES / 2 }, (_, i) => PAGES / 2 + i);
      const writes = [...holes.filter((p) => p % 2 === 0), 0, 3, 6, 1, 2];
      await h.write(2, writes);
      await c.startSave(undefined, { maxInUse: 32 });
      const saved = await drainSave(h);
      expect(saved.size).toBe(PAGES);
      expect(differing(saved, ref)).toEqual([]);
      // Tracking went on: exactly what was written after the pause is the next D.
      await c.confirm();
      const next = await c.checkpoint({ plan: "protect-all" });
      const sets = await c.checkpointSets(next);
      expect([...sets.dirty.toArray()]).toEqual([...writes].sort((a, b) => a - b));
      const ref2 = await pausedCopy(h, "ref-next");
      await h.write(3, writes.slice(0, 50));
      await c.startSave();
      const saved2 = await drainSave(h);
      expect(saved2.size).toBe(writes.length);
      expect(differing(saved2, ref2)).toEqual([]);
    },
  );

  it("a written page discarded before the harvest (hole punched, PTE zapped) is still in D", async () => {
    harness = await Harness.start(PAGES);
    await discardedWritesAreTracked(harness, mode);
  });
});

it("sync mode on a kernel without WP_UNPOPULATED: a discarded written page is tracked on", async () => {
  harness = await Harness.start(PAGES, { VPC_DIRTY_LOG_HIDE_FEATURES: String(WP_UNPOPULATED) });
  await discardedWritesAreTracked(harness, "sync");
});

/** uffd feature bit (Linux 6.4): write-protect page-table entries that were never populated. */
const WP_UNPOPULATED = 1 << 13;

async function discardedWritesAreTracked(h: Harness, mode: TrackingMode): Promise<void> {
  {
    const c = h.client;
    await c.attach({ memPath: h.ramPath, mode, stagingSlots: 64 });
    await h.write(1, [10, 11, 12]);
    await c.arm();
    await h.write(2, [10, 20, 30]);
    await h.cmd("punch 10,20");
    const d = await c.harvest();
    expect([...d.dirty.toArray()]).toEqual([10, 20, 30]);
    // The next interval still tracks them.
    await h.write(3, [20]);
    const next = await c.harvest();
    expect([...next.dirty.toArray()]).toEqual([20]);
  }
}
