import { open, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { PageSet } from "@vpc/pageset";
import { afterEach, describe, expect, it } from "vitest";
import { Harness } from "./internal/harness.js";
import type { CheckpointPlan, TrackingMode } from "./protocol.js";

const PAGES = 8192; // 32 MiB
const PAGE = 4096;
const CHECKPOINTS = Number(process.env.VPC_COW_CHECKPOINTS ?? 5);
/** protect-all's saver runs with this bound on staged slots (the others unbounded). */
const SAVER_MAX_IN_USE = 64;

let harness: Harness | undefined;
afterEach(async () => {
  await harness?.close();
  harness = undefined;
});

function differingPages(a: Buffer, b: Buffer): PageSet {
  const s = new PageSet(PAGES);
  for (let p = 0; p < PAGES; p++) {
    if (a.compare(b, p * PAGE, (p + 1) * PAGE, p * PAGE, (p + 1) * PAGE) !== 0) s.add(p);
  }
  return s;
}

describe.each<TrackingMode>(["sync", "async"])("COW checkpoints under a running writer (%s mode)", (mode) => {
  it("saves each checkpoint byte for byte and never misses a write", {
    timeout: 10_000 + CHECKPOINTS * 1000,
  }, async () => {
    harness = await Harness.start(PAGES);
    const h = harness;
    const c = h.client;
    await c.attach({ memPath: h.ramPath, mode, stagingSlots: 256 });
    await c.arm();
    await h.cmd("writer start 12345");
    let prevRef: Buffer | undefined;
    for (let k = 0; k < CHECKPOINTS; k++) {
      await new Promise((r) => setTimeout(r, 30));
      // Checkpoint pause: the writer stops between two writes, the reference image is taken.
      await h.cmd("writer pause");
      const refPath = join(h.dir.dir, `ref${k}`);
      await h.cmd(`dump ${refPath}`);
      const ref = await readFile(refPath);
      await rm(refPath);
      const d = await c.harvest();
      if (prevRef) {
        // Every page whose content changed since the last checkpoint is in D.
        expect(differingPages(prevRef, ref).isSubsetOf(d.dirty)).toBe(true);
      }
      await c.protect(d.dirty);
      await h.cmd("writer resume");
      // Saver: page by page while the writer keeps going.
      const f = await open(h.ramPath, "r");
      const saved = new PageSet(PAGES);
      let mismatches = 0;
      try {
        await c.saveProtected(d.dirty, (page, bytes) => {
          expect(saved.has(page)).toBe(false);
          saved.add(page);
          if (Buffer.compare(bytes, ref.subarray(page * PAGE, (page + 1) * PAGE)) !== 0) mismatches++;
        });
      } finally {
        await f.close();
      }
      expect(mismatches).toBe(0);
      expect(saved.equals(d.dirty)).toBe(true);
      await c.confirm();
      prevRef = ref;
    }
    await h.cmd("writer stop");
    const st = await c.stats();
    expect(st.pending).toBe(0);
    expect(st.staging.inUse).toBe(0);
  });
});

describe.each<TrackingMode>(["sync", "async"])(
  "one-call checkpoints and the agent's saver (%s mode)",
  (mode) => {
    it.each<CheckpointPlan>(["copy-all", "protect-all", "predict"])(
      "%s: every page of the save set is stored once, with its content at the pause",
      {
        // Generous: a full epoch reads 8192 slots one by one; a loaded machine must not time out.
        timeout: 30_000 + CHECKPOINTS * 6000,
      },
      async (plan) => {
        harness = await Harness.start(PAGES);
        const h = harness;
        const c = h.client;
        await c.attach({ memPath: h.ramPath, mode, stagingSlots: PAGES });
        await h.cmd("writer start 777");
        // P: every third page, so the protected rest is fragmented (async: the agent then zaps whole runs).
        const predicted = new PageSet(PAGES);
        for (let p = 0; p < PAGES; p += 3) predicted.add(p);
        for (let k = 0; k < CHECKPOINTS; k++) {
          await new Promise((r) => setTimeout(r, 30));
          await h.cmd("writer pause");
          const refPath = join(h.dir.dir, `ref${k}`);
          await h.cmd(`dump ${refPath}`);
          const ref = await readFile(refPath);
          await rm(refPath);
          const reply = await c.checkpoint(
            { plan, full: k === 0 },
            plan === "predict" ? predicted : undefined,
          );
          expect(reply.armed).toBe(k === 0);
          expect(reply.copied + reply.protected).toBe(reply.toSave);
          const sets = await c.checkpointSets(reply);
          const saveSet = k === 0 ? new PageSet(PAGES).fill() : sets.accumulated;
          expect(saveSet.count()).toBe(reply.toSave);
          if (plan === "copy-all") expect(sets.copied.equals(saveSet)).toBe(true);
          if (plan === "protect-all") expect(reply.copied).toBe(0);
          if (plan === "predict") expect(sets.copied.equals(saveSet.and(predicted))).toBe(true);
          await h.cmd("writer resume");
          const maxInUse = plan === "protect-all" ? SAVER_MAX_IN_USE : 0;
          await c.startSave(plan === "predict" ? saveSet.andNot(predicted) : undefined, { maxInUse });
          const saved = new PageSet(PAGES);
          let mismatches = 0;
          for (;;) {
            const batch = await c.readStaged();
            // The bound holds for the saver's own copies; COW faults may use the slots beyond it.
            if (maxInUse > 0)
              expect(batch.sources.filter((s) => s === "copy").length).toBeLessThanOrEqual(maxInUse);
            batch.pages.forEach((page, i) => {
              expect(saved.has(page)).toBe(false);
              saved.add(page);
              const bytes = batch.data.subarray(i * PAGE, (i + 1) * PAGE);
              if (Buffer.compare(bytes, ref.subarray(page * PAGE, (page + 1) * PAGE)) !== 0) mismatches++;
            });
            if (batch.pages.length) await c.releaseStaged(batch);
            const st = await c.saveStatus();
            if (!st.saving && st.inUse === 0 && batch.pages.length === 0) {
              expect(st.pending).toBe(0);
              expect(st.endNs).toBeGreaterThanOrEqual(st.startNs);
              break;
            }
          }
          expect(mismatches).toBe(0);
          expect(saved.equals(saveSet)).toBe(true);
          await c.confirm();
        }
        await h.cmd("writer stop");
        const st = await c.stats();
        expect(st.pending).toBe(0);
        expect(st.staging.inUse).toBe(0);
      },
    );

    it("mark: R holds only what was written after it; a window adds R (and its fronts) to P", async () => {
      harness = await Harness.start(PAGES);
      const h = harness;
      const c = h.client;
      await c.attach({ memPath: h.ramPath, mode, stagingSlots: PAGES });
      await c.checkpoint({ plan: "copy-all", full: true });
      await c.stagedSlots().then((s) => c.release(s.map((x) => x.slot)));
      await c.confirm();
      await h.cmd("write 1 10-19,104-105");
      await c.mark();
      await h.cmd("write 2 100-103");
      const reply = await c.checkpoint({ plan: "predict", front: 1, fallback: 2 }, new PageSet(PAGES));
      expect(reply.marked).toBe(true);
      const sets = await c.checkpointSets(reply);
      expect([...sets.recent.toArray()]).toEqual([100, 101, 102, 103]);
      const tens = Array.from({ length: 10 }, (_, i) => 10 + i);
      expect([...sets.dirty.toArray()]).toEqual([...tens, 100, 101, 102, 103, 104, 105]);
      // P = R ∪ the 4 pages after R's run (front 1 × its length); only pages to save are copied.
      expect([...sets.copied.toArray()]).toEqual([100, 101, 102, 103, 104, 105]);
      expect(reply.protected).toBe(10);
      await c.startSave();
      while ((await c.saveStatus()).saving) await new Promise((r) => setTimeout(r, 1));
      await c.stagedSlots().then((s) => c.release(s.map((x) => x.slot)));
    });
  },
);
