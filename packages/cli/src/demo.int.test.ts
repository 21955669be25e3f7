import { readdir } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { runDemo } from "./demo.js";

// Real QEMU under TCG with the image from `make guest`: the whole `vpc demo` flow.
describe("vpc demo", () => {
  it("restores after SIGKILL and the counter continues from the checkpointed value", async () => {
    const shmBefore = new Set(await readdir("/dev/shm"));
    const lines: string[] = [];
    const r = await runDemo({ runAfterMs: 3000, progress: (l) => lines.push(l) });
    expect(r.failure).toBeUndefined();
    expect(r.ok).toBe(true);
    const checkpointed = BigInt(r.counter.checkpointed);
    expect(checkpointed).toBeGreaterThanOrEqual(BigInt(r.counter.beforePause));
    expect(BigInt(r.counter.afterRestore)).toBeGreaterThanOrEqual(checkpointed);
    expect(BigInt(r.counter.afterRestore)).toBeLessThan(BigInt(r.counter.beforeKill));
    expect(r.deviceState.bytes).toBeGreaterThan(0);
    expect(r.ramBytes).toBe(256 * 1024 * 1024);
    expect(r.pauseMs).toBeGreaterThan(0);
    expect(r.restoreMs).toBeGreaterThan(0);
    expect(lines.some((l) => l.startsWith("OK:"))).toBe(true);
    const leftovers = (await readdir("/dev/shm")).filter(
      (f) => !shmBefore.has(f) && f.startsWith("vpc-demo"),
    );
    expect(leftovers).toEqual([]);
  });
});
