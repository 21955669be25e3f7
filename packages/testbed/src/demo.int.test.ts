import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { loadClusterConfig } from "@vpc/cluster";
import { describe, expect, it } from "vitest";
import { runClusterDemo } from "./demo.js";

// Run limits: boot ~6 s (parallel), CG.S -n 2 ~5–15 s under TCG with checkpoints, restore ~3 s.
// The demo's own limit sits below the test's, so on a hang the demo fails with the workload
// output and still tears the testbed down (its `finally`) before vitest gives up on the test.
const RUN_LIMIT_MS = 210_000;
const FINISH_LIMIT_MS = 150_000;
const TEARDOWN_MS = 90_000;

// Known MPI library problem, not vpc's: MPICH 4.0.2 (Debian, ch4:ucx, UCX 1.13) often hangs in
// MPI_Finalize across these VMs, with or without checkpoints (docs/cluster.md "MPI finalize
// hang"). The demo judges the run by its result blocks: every run's block must be printed and
// verified; if mpiexec then does not exit within the grace period, the hang is reported
// (finalizeHang) instead of waited out. Everything before MPI_Finalize — the computation that
// crossed the kill and the restore — must be complete and verified for the test to pass.

// testbed/demo.json (the main job's cluster): two netns hosts, one VM each, an NPB kernel across
// the VMs with global vpc checkpoints every second; the whole cluster is killed mid-run and
// restored from the last committed epoch. Not four VMs: on CI's two cores, four TCG guests
// running MPI do not finish CG.S even without checkpoints (docs/cluster.md, "How many VMs").
// Needs root, `make guest` with the NPB binaries, and a built controller (the agents run dist/).
describe("virtual cluster on netns hosts (TCG)", () => {
  it(
    "survives a whole-cluster kill and finishes with a verified NPB result, leaving nothing",
    async () => {
      const config = await loadClusterConfig(
        process.env.VPC_CLUSTER_CONFIG ?? join(import.meta.dirname, "../../../testbed/demo.json"),
      );
      const shmBefore = new Set(await readdir("/dev/shm"));
      const r = await runClusterDemo({
        config,
        onProgress: (l) => process.stderr.write(`[cluster] ${l}\n`),
        timeoutMs: RUN_LIMIT_MS,
        finishTimeoutMs: FINISH_LIMIT_MS,
        // VPC_KEEP_RUN_DIR=1 keeps the run directory (metrics.jsonl, epochs, agent logs) to read
        // after a failure; the processes, namespaces and /dev/shm files go either way.
        keepRunDir: process.env.VPC_KEEP_RUN_DIR === "1",
      });
      process.stderr.write(`[cluster] result ${JSON.stringify({ ...r, epochs: r.epochs.length })}\n`);
      expect(r.killedMidRun).toBe(true);
      expect(r.verified).toBe(true);
      expect(r.verificationLines.length).toBe(config.workload.repeat);
      expect(r.verificationLines.every((l) => /SUCCESSFUL/.test(l))).toBe(true);
      expect(r.restoredEpoch).toBeGreaterThanOrEqual(1);
      expect(r.epochs.length).toBeGreaterThanOrEqual(2);
      const shmNew = (await readdir("/dev/shm")).filter((f) => !shmBefore.has(f) && f.startsWith("vpc-"));
      expect(shmNew).toEqual([]);
    },
    RUN_LIMIT_MS + TEARDOWN_MS,
  );
});
