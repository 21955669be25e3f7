import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { Cluster, validateClusterConfig } from "@vpc/cluster";
import { defaultGuestImageDir } from "@vpc/controller";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testbedHostSpecs } from "./config-hosts.js";
import { clusterHosts, testbedDown, testbedLeftovers, testbedUp } from "./hosts.js";
import { defaultHostImageDir } from "./qemu-host.js";
import type { TestbedState } from "./state.js";
import { type Memcheck, parseMemcheck, waitFor } from "./testing/memcheck.js";

// Nested smoke test (CI, TCG, no KVM): one qemu host (an L1 VM on this machine's root) with one
// L2 VM inside, driven through the general Cluster path like any other host kind. The L2 runs
// vpc-memcheck (it checks its own memory), gets vpc global checkpoints, is SIGKILLed with its
// agent and restored inside the L1, and its self-check must carry on clean from the checkpoint.
// L2 under TCG inside TCG is slow (docs/nested.md): the limits are generous and tunable.
const LIMIT_MS = Number(process.env.VPC_NESTED_TIMEOUT_MS ?? 900_000);
const CHECKPOINTS = Number(process.env.VPC_NESTED_CHECKPOINTS ?? 2);
// The slim guest image (no MPI: the test runs vpc-memcheck only) has a 10 MB initramfs stored
// uncompressed, so the L2 kernel neither decompresses nor needs room for the full image's 58 MB.
const L2_MEM_MIB = Number(process.env.VPC_NESTED_L2_MIB ?? 128);
const SLIM_IMAGE = join(dirname(defaultGuestImageDir()), "guest-slim");

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");

// Unique per run: other tests and helpers use their own bridges and prefixes.
const NET = (process.pid % 200) + 20;

async function memcheck(c: Cluster, vm: string): Promise<Memcheck> {
  const r = await c.exec(vm, "cat /run/vpc-memcheck", 120_000);
  return parseMemcheck(r.stdout + r.stderr);
}

describe("nested smoke: a qemu host with one L2 VM (TCG inside TCG)", () => {
  let testbed: TestbedState | undefined;
  let cluster: Cluster | undefined;

  beforeAll(async () => {
    // Cached: no-ops when the images are current (CI builds them here on first use).
    await promisify(execFile)("bash", [join(REPO, "images/host/build.sh"), defaultHostImageDir()], {
      maxBuffer: 1 << 24,
    });
    await promisify(execFile)("bash", [join(REPO, "images/guest/build.sh"), SLIM_IMAGE], {
      env: { ...process.env, VARIANT: "slim" },
      maxBuffer: 1 << 24,
    });
  }, 600_000);

  afterAll(async () => {
    await cluster?.close().catch(() => undefined);
    if (testbed) await testbedDown(testbed.runDir).catch(() => undefined);
  }, 120_000);

  it(
    "boots the L2 in the L1, checkpoints it with vpc, kills and restores it there, and its memory self-check passes",
    async () => {
      const config = validateClusterConfig({
        name: "nsmoke",
        fabricPrefix: `10.232.${NET}.0/24`,
        dataPrefix: `192.168.232.0/24`,
        engine: "vpc",
        epochTimeoutMs: 300_000,
        hosts: [{ name: "q1", kind: "qemu", memMiB: 1024, vms: [{ name: "nvm1", memMiB: L2_MEM_MIB }] }],
        fsync: false,
      });
      const t = { start: performance.now() } as Record<string, number>;
      const mark = (what: string): void => {
        t[what] = performance.now();
        process.stderr.write(`[nested] ${what} at ${((t[what]! - t.start!) / 1000).toFixed(1)} s\n`);
      };
      const progress = (l: string): void => {
        process.stderr.write(`[nested] ${l}\n`);
      };
      testbed = await testbedUp({
        hosts: testbedHostSpecs(config),
        bridgeIp: config.fabric.bridgeIp,
        prefixLength: config.fabric.prefixLength,
      });
      mark("L1 up");
      const h = testbed.hosts[0]!;
      expect(h.kind).toBe("qemu");
      const common = {
        config,
        ...clusterHosts(testbed),
        image: SLIM_IMAGE,
        bootTimeoutMs: LIMIT_MS,
        onProgress: progress,
      };
      // Connecting runs the host agent in the L1 over SSH and initialises it (an RPC round trip).
      cluster = await Cluster.start(common);
      mark("L2 booted");

      await cluster.exec(
        "nvm1",
        "vpc-memcheck -m 8 -w 32 -s 5000 -v 1000 >/dev/null 2>/run/memcheck.err </dev/null &",
        120_000,
      );
      const first = await waitFor(
        () => memcheck(cluster!, "nvm1"),
        (m) => m.verifies >= 1,
        120_000,
        1000, // each exec in an L2 costs a shell start under TCG inside TCG
      );
      mark("memcheck running");
      const epochs = [];
      for (let i = 0; i < CHECKPOINTS; i++) epochs.push(await cluster.checkpoint());
      mark(`${CHECKPOINTS} checkpoints`);
      for (const e of epochs)
        progress(
          `epoch ${e.epoch}: VC downtime ${e.vcDowntimeMs.toFixed(0)} ms, ${(e.checkpointBytes / 1e6).toFixed(1)} MB`,
        );
      expect(await cluster.committedEpochs()).toEqual(epochs.map((e) => e.epoch));
      const beforeKill = await memcheck(cluster, "nvm1");
      expect(beforeKill.failures).toBe(0);

      await cluster.kill();
      cluster = undefined;
      mark("killed");
      const restored = await Cluster.restore(common);
      cluster = restored.cluster;
      mark("restored");
      expect(restored.result.epoch).toBe(epochs.at(-1)!.epoch);

      const after = await memcheck(cluster, "nvm1");
      expect(after.nonce).toBe(first.nonce); // the same run of the program, not a fresh one
      expect(after.verifies).toBeGreaterThanOrEqual(first.verifies);
      const later = await waitFor(
        () => memcheck(cluster!, "nvm1"),
        (m) => m.verifies >= after.verifies + 2,
        180_000,
        1000,
      );
      expect(later.failures).toBe(0);
      expect((await cluster.exec("nvm1", "cat /run/memcheck.err", 60_000)).stdout).toBe("");
      mark("self-check clean after restore");

      // The L1 runs Debian's 6.1 kernel: no WP_ASYNC, so the agent must have said it fell back.
      const agentLog = await readFile(join(h.localDir!, "agent.log"), "utf8");
      const fallback = agentLog.split("\n").find((l) => l.includes("vm.tracking-fallback"));
      progress(`tracking: ${fallback ?? "async (no fallback line)"}`);

      await cluster.close();
      cluster = undefined;
      const st = testbed;
      testbed = undefined;
      await testbedDown(st.runDir);
      expect(await testbedLeftovers(st)).toEqual([]);
      mark("down");
    },
    LIMIT_MS,
  );
});
