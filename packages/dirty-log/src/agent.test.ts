import type { PageSet } from "@vpc/pageset";
import { afterEach, describe, expect, it } from "vitest";
import { AgentError } from "./errors.js";
import { Harness } from "./internal/harness.js";
import type { TrackingMode } from "./protocol.js";

const PAGES = 4096; // 16 MiB of guest RAM

let harness: Harness | undefined;
afterEach(async () => {
  await harness?.close();
  harness = undefined;
});

function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 2 ** 32;
  };
}
function randomPages(r: () => number, n: number, max = PAGES): number[] {
  const s = new Set<number>();
  while (s.size < n) s.add(Math.floor(r() * max));
  return [...s];
}

describe.each<TrackingMode>(["sync", "async"])("agent in %s mode (harness, no QEMU)", (mode) => {
  it("harvests exactly the written pages, interval after interval; reads stay clean", async () => {
    harness = await Harness.start(PAGES);
    const c = harness.client;
    const info = await c.attach({ memPath: harness.ramPath, mode, stagingSlots: 64 });
    expect(info).toMatchObject({ mode, pageCount: PAGES, pageSize: 4096 });
    // Some pages populated before arm, some never touched: both kinds must be tracked.
    await harness.write(1, [0, 1, 2, 100]);
    await c.arm();
    const r = rng(42);
    for (let round = 0; round < 6; round++) {
      const written = randomPages(r, 50 + round * 40);
      const readOnly = randomPages(r, 30).filter((p) => !written.includes(p));
      await harness.read(readOnly);
      if (mode === "async" && round % 2) await c.peek();
      await harness.write(round + 2, written);
      const h = await c.harvest();
      expect(h.dirty.toArray()).toEqual(Uint32Array.from([...written].sort((a, b) => a - b)));
      expect(h.exact).toBe(mode === "sync");
      expect(new Set(h.order.pages)).toEqual(new Set(written));
      // Sync order is exact: the harness writes the list front to back.
      if (mode === "sync") expect([...h.order.pages]).toEqual(written);
    }
    const empty = await c.harvest();
    expect(empty.dirty.count()).toBe(0);
  });

  it("keeps the accumulated set until confirm", async () => {
    harness = await Harness.start(PAGES);
    const c = harness.client;
    await c.attach({ memPath: harness.ramPath, mode, stagingSlots: 64 });
    await c.arm();
    await harness.write(1, [5, 6]);
    const a = await c.harvest();
    await harness.write(2, [7]);
    const b = await c.harvest();
    expect(b.dirty.toArray()).toEqual(Uint32Array.from([7]));
    expect(b.accumulated.toArray()).toEqual(Uint32Array.from([5, 6, 7]));
    expect(a.accumulated.toArray()).toEqual(Uint32Array.from([5, 6]));
    await c.confirm();
    await harness.write(3, [8]);
    const d = await c.harvest();
    expect(d.accumulated.toArray()).toEqual(Uint32Array.from([8]));
  });

  it("writes made during a COW phase land in the next interval; saved pages hold checkpoint content", async () => {
    harness = await Harness.start(PAGES);
    const c = harness.client;
    await c.attach({ memPath: harness.ramPath, mode, stagingSlots: 16 });
    await c.arm();
    const r = rng(7);
    for (let round = 0; round < 4; round++) {
      const written = randomPages(r, 200);
      await harness.write(10 + round, written);
      // "pause": nothing writes between harvest and protect.
      const h = await c.harvest();
      expect(h.dirty.count()).toBe(written.length);
      const ref = await readRam(harness, h.dirty);
      await c.protect(h.dirty);
      // "resume": the guest writes some protected pages (COW faults, staging only 16 slots so
      // faults wait for the saver) and some others, and reads a few.
      const during = [...randomPages(r, 40, PAGES), ...written.slice(0, 30)];
      const uniqueDuring = [...new Set(during)];
      const saved = new Map<number, Uint8Array>();
      const writer = harness.write(100 + round, uniqueDuring);
      const reads = harness.read(written.slice(30, 60));
      const save = c.saveProtected(h.dirty, (page, bytes) => {
        expect(saved.has(page)).toBe(false);
        saved.set(page, bytes);
      });
      await Promise.all([writer, reads]);
      await save;
      expect([...saved.keys()].sort((a, b) => a - b)).toEqual([...h.dirty.toArray()]);
      for (const [page, bytes] of saved) expect(Buffer.compare(bytes, ref.get(page)!)).toBe(0);
      const next = await c.harvest();
      expect(next.dirty.toArray()).toEqual(Uint32Array.from(uniqueDuring.sort((a, b) => a - b)));
      await c.confirm();
    }
    const st = await c.stats();
    expect(st.cowFaults.count).toBeGreaterThan(0);
    expect(st.pending).toBe(0);
  });
});

async function readRam(h: Harness, set: PageSet): Promise<Map<number, Uint8Array>> {
  const { open } = await import("node:fs/promises");
  const f = await open(h.ramPath, "r");
  const out = new Map<number, Uint8Array>();
  for (const p of set) {
    const b = new Uint8Array(4096);
    await f.read(b, 0, 4096, p * 4096);
    out.set(p, b);
  }
  await f.close();
  return out;
}

describe("agent errors", () => {
  it("attach names a missing mapping with errno", async () => {
    harness = await Harness.start(64);
    const e = await harness.client.attach({ memPath: "/nonexistent/ram" }).catch((x) => x);
    expect(AgentError.isInstance(e)).toBe(true);
    expect(e).toMatchObject({ op: "attach", errno: 2 });
    expect(harness.client.attachment).toBeUndefined();
  });
});
