import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadClusterConfig } from "./config.js";
import { runClusterDemo } from "./demo.js";

// Two netns hosts, two VMs each, an NPB kernel across the four VMs with global vpc checkpoints
// every second; the whole cluster is killed mid-run and restored from the last committed epoch.
// Needs root, `make guest` with the NPB binaries, and a built controller (the agents run dist/).
describe("virtual cluster on netns hosts (TCG)", () => {
  it("survives a whole-cluster kill and finishes with a verified NPB result, leaving nothing", async () => {
    const config = await loadClusterConfig(
      process.env.VPC_CLUSTER_CONFIG ?? join(import.meta.dirname, "../../../../testbed/default.json"),
    );
    const shmBefore = new Set(await readdir("/dev/shm"));
    const r = await runClusterDemo({
      config,
      onProgress: (l) => process.stderr.write(`[cluster] ${l}\n`),
      timeoutMs: 1_500_000,
    });
    process.stderr.write(`[cluster] result ${JSON.stringify({ ...r, epochs: r.epochs.length })}\n`);
    expect(r.verified).toBe(true);
    expect(r.verificationLines.every((l) => /SUCCESSFUL/.test(l))).toBe(true);
    expect(r.restoredEpoch).toBeGreaterThanOrEqual(1);
    expect(r.epochs.length).toBeGreaterThanOrEqual(2);
    const shmNew = (await readdir("/dev/shm")).filter((f) => !shmBefore.has(f) && f.startsWith("vpc-"));
    expect(shmNew).toEqual([]);
  }, 1_600_000);
});
