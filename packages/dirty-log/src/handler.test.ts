import { readdir } from "node:fs/promises";
import { afterEach, describe, expect, it } from "vitest";
import { AgentError } from "./errors.js";
import { Harness } from "./internal/harness.js";

const PAGES = 1024;

let harness: Harness | undefined;
afterEach(async () => {
  await harness?.close();
  harness = undefined;
});

async function threadCount(pid: number): Promise<number> {
  return (await readdir(`/proc/${pid}/task`)).length;
}

describe("fault handler", () => {
  it("resolves a fault outside the tracked range instead of leaving the thread hanging", async () => {
    harness = await Harness.start(PAGES);
    const c = harness.client;
    await c.attach({ memPath: harness.ramPath, mode: "async", stagingSlots: 16 });
    await c.arm();
    // The mapping grows in place over a page already in the page cache: it keeps its MINOR
    // registration, so reading it is a fault the agent's range does not cover.
    await harness.cmd("grow");
    await harness.write(1, [5]);
    const h = await c.harvest();
    expect([...h.dirty.toArray()]).toEqual([5]);
  });

  it("stops when the watchdog dropped the userfaultfd, instead of spinning on /dev/null", async () => {
    // A 0 ms watchdog declares the handler stuck whenever it is caught handling a fault.
    harness = await Harness.start(PAGES, { VPC_DIRTY_LOG_WATCHDOG_MS: "0" });
    const c = harness.client;
    await c.attach({ memPath: harness.ramPath, mode: "sync", stagingSlots: 16 });
    await c.arm();
    const pid = harness.child.pid ?? 0;
    const withHandler = await threadCount(pid);
    await harness.cmd("writer start 99");
    // Every harvest re-protects the writer's pages: a stream of tracking faults.
    let error: unknown;
    while (error === undefined)
      error = await c.harvest().then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(AgentError.isInstance(error)).toBe(true);
    expect(error).toMatchObject({ op: "harvest", errno: 5 });
    await harness.cmd("writer stop");
    // Handler and watchdog both end: a spinning handler would stay.
    while ((await threadCount(pid)) !== withHandler - 2) await new Promise((r) => setTimeout(r, 20));
    expect((await c.stats()).failed).toBe(true);
    await c.detach();
  });
});
