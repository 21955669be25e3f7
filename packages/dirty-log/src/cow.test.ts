import { open, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { PageSet } from "@vpc/pageset";
import { afterEach, describe, expect, it } from "vitest";
import { Harness } from "./internal/harness.js";
import type { TrackingMode } from "./protocol.js";

const PAGES = 8192; // 32 MiB
const PAGE = 4096;
const CHECKPOINTS = Number(process.env.VPC_COW_CHECKPOINTS ?? 5);

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
