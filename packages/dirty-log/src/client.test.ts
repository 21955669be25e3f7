import { readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { PageSet, readDirtyTrace } from "@vpc/pageset";
import { afterEach, describe, expect, it } from "vitest";
import { DirtyLogClient } from "./client.js";
import { AgentError, DirtyLogError, InterruptedError, StateError } from "./errors.js";
import { Harness } from "./internal/harness.js";
import { DirtyTraceRecorder, harvestToTraceRecord } from "./trace.js";

let harness: Harness | undefined;
afterEach(async () => {
  await harness?.close();
  harness = undefined;
});

/** Page `i` of `bytes` (pages back to back). */
function pageOf(bytes: Buffer, i: number, pageSize: number): Buffer {
  return bytes.subarray(i * pageSize, (i + 1) * pageSize);
}

describe("client against the real agent (harness process)", () => {
  it("says hello and refuses commands before attach", async () => {
    harness = await Harness.start(256);
    const hello = await harness.client.hello();
    expect(hello).toMatchObject({
      agent: "vpc-dirty-log",
      protocol: 1,
      pid: harness.child.pid,
      attached: false,
    });
    const e = await harness.client.arm().catch((x) => x);
    expect(e).toBeInstanceOf(AgentError);
    expect(e).toMatchObject({ op: "arm", errno: 107 }); // ENOTCONN
  });

  it("a client that goes away releases a guest blocked on a full staging buffer", async () => {
    harness = await Harness.start(256);
    const c = harness.client;
    await c.attach({ memPath: harness.ramPath, mode: "sync", stagingSlots: 1 });
    await c.arm();
    await harness.write(1, [1, 2, 3]);
    const d = await c.harvest();
    await c.protect(d.dirty);
    // The second COW fault waits for a slot that nobody releases.
    const blocked = harness.write(2, [1, 2, 3]);
    let done = false;
    void blocked.then(() => {
      done = true;
    });
    await new Promise((r) => setTimeout(r, 200));
    expect(done).toBe(false);
    await c.close();
    await blocked;
    expect(c.state).toBe("idle");
    // The agent detached; a new client can attach again.
    const c2 = await DirtyLogClient.connect(harness.dir.socketPath);
    try {
      expect((await c2.hello()).attached).toBe(false);
    } finally {
      await c2.close();
    }
  });

  it("rejects pending calls with InterruptedError when the connection drops", async () => {
    harness = await Harness.start(256);
    const c = harness.client;
    const calls = [c.hello(), c.hello(), c.hello()];
    harness.child.kill("SIGKILL");
    const results = await Promise.allSettled(calls);
    const rejected = results.filter((r) => r.status === "rejected");
    for (const r of rejected) expect((r as PromiseRejectedResult).reason).toBeInstanceOf(InterruptedError);
    await new Promise((r) => setTimeout(r, 50));
    expect(c.pendingCalls).toBe(0);
    expect(c.state).toBe("idle");
    await expect(c.hello()).rejects.toBeInstanceOf(StateError);
  });

  it("fails to connect with a CONNECT error", async () => {
    const e = await DirtyLogClient.connect("/nonexistent/sock", { timeoutMs: 50 }).catch((x) => x);
    expect(DirtyLogError.isInstance(e)).toBe(true);
    expect(e).toMatchObject({ code: "CONNECT", path: "/nonexistent/sock" });
  });

  it("switches mode while paused without losing the interval's writes", async () => {
    harness = await Harness.start(1024);
    const c = harness.client;
    await c.attach({ memPath: harness.ramPath, mode: "sync" });
    await c.arm();
    await harness.write(1, [10, 11]);
    expect(await c.setMode("async")).toBe("async");
    await harness.write(2, [12]);
    expect((await c.harvest()).dirty.toArray()).toEqual(Uint32Array.from([10, 11, 12]));
    expect(await c.setMode("sync")).toBe("sync");
    await harness.write(3, [13]);
    const h = await c.harvest();
    expect(h.dirty.toArray()).toEqual(Uint32Array.from([13]));
    expect(h.exact).toBe(true);
  });

  it("refuses a second protect while COW pages are pending", async () => {
    harness = await Harness.start(256);
    const c = harness.client;
    await c.attach({ memPath: harness.ramPath, mode: "async" });
    await c.arm();
    await harness.write(1, [4]);
    const d = await c.harvest();
    await c.protect(d.dirty);
    await expect(c.protect(d.dirty)).rejects.toMatchObject({ op: "protect", errno: 16 }); // EBUSY
    const r = await c.copy(d.dirty, { onlyProtected: true });
    expect(r).toMatchObject({ copied: 1, pending: 0 });
    expect(await c.stagedSlots()).toEqual([{ slot: 0, page: 4, source: "copy" }]);
    expect((await c.releaseSet(d.dirty)).released).toBe(1);
  });

  it("readStaged returns staged pages in one bounded batch; releaseStaged frees exactly them", async () => {
    harness = await Harness.start(256);
    const c = harness.client;
    const info = await c.attach({ memPath: harness.ramPath, mode: "sync", stagingSlots: 8 });
    const page = (bytes: Buffer, i: number): Buffer => pageOf(bytes, i, info.pageSize);
    await c.arm();
    await harness.write(1, [3, 4, 5, 9, 20]);
    const d = await c.harvest();
    const atCheckpoint = await readFile(harness.ramPath);
    await c.protect(d.dirty);
    // Writes fault 9 and 20 into staging (their content at the checkpoint); copy stages the rest.
    await harness.write(2, [9, 20]);
    expect(await c.copy(d.dirty, { onlyProtected: true })).toMatchObject({ copied: 3, pending: 0 });
    const now = await readFile(harness.ramPath);
    expect(page(now, 9).equals(page(atCheckpoint, 9))).toBe(false);

    const first = await c.readStaged(3);
    expect(first.staged).toBe(5);
    expect(first.pages.length).toBe(3);
    expect(first.data.length).toBe(3 * info.pageSize);
    const slotsBefore = await c.stagedSlots();
    expect([...first.slots]).toEqual(slotsBefore.slice(0, 3).map((s) => s.slot));
    expect([...first.pages]).toEqual(slotsBefore.slice(0, 3).map((s) => s.page));
    // Reading frees nothing: a crash before the pages are stored loses none.
    expect(slotsBefore.length).toBe(5);
    expect((await c.releaseStaged(first)).released).toBe(3);

    const rest = await c.readStaged();
    expect(rest.staged).toBe(2);
    const batches = [first, rest];
    const seen = new Map<number, string>();
    for (const b of batches) {
      b.pages.forEach((p, i) => {
        seen.set(p, b.sources[i]!);
        expect(page(b.data, i).equals(page(atCheckpoint, p))).toBe(true);
      });
    }
    expect(Object.fromEntries(seen)).toEqual({ 3: "copy", 4: "copy", 5: "copy", 9: "cow", 20: "cow" });
    expect(await c.releaseStaged(rest)).toEqual({ released: 2, inUse: 0 });

    const empty = await c.readStaged();
    expect(empty).toMatchObject({ staged: 0, sources: [] });
    expect(empty.pages.length + empty.data.length + empty.slots.length).toBe(0);
    await expect(c.readStaged(0)).rejects.toBeInstanceOf(RangeError);
  });

  it("readStaged reads slots that are not contiguous, each page from its own slot", async () => {
    harness = await Harness.start(256);
    const c = harness.client;
    const info = await c.attach({ memPath: harness.ramPath, mode: "async", stagingSlots: 8 });
    const ps = info.pageSize;
    await c.arm();
    const written = [1, 2, 3, 4, 5, 6];
    await harness.write(7, written);
    const d = await c.harvest();
    const atCheckpoint = await readFile(harness.ramPath);
    await c.copy(d.dirty);
    // Free the second and fifth slots: the filled ones form three runs.
    const slots = await c.stagedSlots();
    expect(slots.map((s) => s.slot)).toEqual([0, 1, 2, 3, 4, 5]);
    const freed = PageSet.fromPages(256, [slots[1]!.page, slots[4]!.page]);
    expect((await c.releaseSet(freed)).released).toBe(2);
    const batch = await c.readStaged();
    expect([...batch.slots]).toEqual([0, 2, 3, 5]);
    expect(batch.sources).toEqual(["copy", "copy", "copy", "copy"]);
    batch.pages.forEach((p, i) => {
      expect(freed.has(p)).toBe(false);
      expect(pageOf(batch.data, i, ps).equals(pageOf(atCheckpoint, p, ps))).toBe(true);
    });
    await c.releaseStaged(batch);
    await c.detach();
    await expect(c.readStaged()).rejects.toBeInstanceOf(StateError);
  });

  it("records a dirty trace: exact order in sync mode, classes in async mode", async () => {
    harness = await Harness.start(512);
    const c = harness.client;
    const info = await c.attach({ memPath: harness.ramPath, mode: "async" });
    await c.arm();
    await harness.write(1, [1, 2]);
    await c.peek();
    await harness.write(2, [3]);
    const h = await c.harvest();
    const rec = harvestToTraceRecord(1, h);
    expect(rec.order.kind).toBe("classes");
    if (rec.order.kind === "classes") {
      expect(rec.order.classes.map((k) => k.pages.toArray())).toEqual([
        Uint32Array.from([1, 2]),
        Uint32Array.from([1, 2, 3]),
      ]);
    }
    const path = join(harness.dir.dir, "t.vdt");
    const recorder = await DirtyTraceRecorder.create(path, info, { test: true });
    await recorder.append(1, h);
    await recorder.close();
    const trace = await readDirtyTrace(path);
    expect(trace.header).toMatchObject({ trackingMode: "async", pageCount: 512, metadata: { test: true } });
    expect(trace.records[0]?.dirty.equals(PageSet.fromPages(512, [1, 2, 3]))).toBe(true);
    await rm(path);
  });
});
