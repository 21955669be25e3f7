// Benchmark: nested (qemu) hosts against netns hosts, measured in the same run on one testbed:
// L1 host ready time, an L2 VM's boot inside the L1 against a VM's boot on a netns host, and one
// NPB kernel (default CG class S, one MPI process) in each. Prints one JSON line.
// Run (root, after `npm run build -w @vpc/controller` and `make images`):
//   VPC_BENCH_NESTED=1 npx vitest run -c vitest.bench.config.ts bench/nested.bench.ts   (in packages/controller)
// VPC_BENCH_NPB=ft.S picks another kernel; VPC_BENCH_NPB_RUNS=3 repeats it (median reported).
// Skipped unless VPC_BENCH_NESTED=1: it takes minutes (TCG inside TCG), too long for `npm run bench`.
import { execFile } from "node:child_process";
import { cpus, loadavg } from "node:os";
import { promisify } from "node:util";
import { Cluster, validateClusterConfig } from "@vpc/cluster";
import { parseNpbResult } from "@vpc/npb";
import { expect, it } from "vitest";
import { testbedHostSpecs } from "../src/config-hosts.js";
import { clusterHosts, testbedDown, testbedUp } from "../src/hosts.js";
import type { TestbedState } from "../src/state.js";

const ENABLED = process.env.VPC_BENCH_NESTED === "1";
const [KERNEL, CLASS] = (process.env.VPC_BENCH_NPB ?? "cg.S").split(".") as [string, string];
const RUNS = Number(process.env.VPC_BENCH_NPB_RUNS ?? 1);
const L2_MEM_MIB = Number(process.env.VPC_NESTED_L2_MIB ?? 192);
const NET = (process.pid % 200) + 20;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
}

/** One kernel run per call in `vm`: wall time seen by the controller and NPB's own timed region. */
async function npb(c: Cluster, vm: string): Promise<{ wallS: number[]; npbS: number[] }> {
  const wallS: number[] = [];
  const npbS: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    const r = await c.exec(vm, `cd /tmp && mpiexec -n 1 /opt/npb/bin/${KERNEL} ${CLASS} 2>&1`, 1_800_000);
    wallS.push((performance.now() - t0) / 1000);
    const parsed = parseNpbResult(r.stdout);
    expect(parsed.verified).toBe(true);
    npbS.push(parsed.seconds);
  }
  return { wallS, npbS };
}

it.runIf(ENABLED)(
  "nested host: L1 ready, L2 ready, NPB in an L2 VM vs a VM on a netns host",
  async () => {
    const config = validateClusterConfig({
      name: "nbench",
      fabricPrefix: `10.233.${NET}.0/24`,
      dataPrefix: "192.168.233.0/24",
      hosts: [
        { name: "n1", vms: [{ name: "bvm-netns", memMiB: L2_MEM_MIB }] },
        { name: "q1", kind: "qemu", memMiB: 1024, vms: [{ name: "bvm-l2", memMiB: L2_MEM_MIB }] },
      ],
      fsync: false,
    });
    // One cluster per host kind on the same testbed, one after the other, so the boots and the
    // kernels do not compete for the two cores.
    const only = (name: string) => ({ ...config, hosts: config.hosts.filter((h) => h.name === name) });
    const load = [loadavg()[0]!];
    let testbed: TestbedState | undefined;
    const clusters: Cluster[] = [];
    try {
      const tUp = performance.now();
      testbed = await testbedUp({
        hosts: testbedHostSpecs(config),
        bridgeIp: config.fabric.bridgeIp,
        prefixLength: config.fabric.prefixLength,
      });
      const upMs = performance.now() - tUp;
      const measure = async (host: string) => {
        const t0 = performance.now();
        const c = await Cluster.start({
          config: only(host),
          ...clusterHosts(testbed!),
          bootTimeoutMs: 1_800_000,
        });
        clusters.push(c);
        const readyMs = performance.now() - t0;
        const vm = only(host).hosts[0]!.vms[0]!.name;
        const run = await npb(c, vm);
        await c.close();
        load.push(loadavg()[0]!);
        return { readyMs, ...run };
      };
      const netns = await measure("n1");
      const l2 = await measure("q1");
      const result = {
        bench: "nested",
        machine: { cpus: cpus().length, loadavg1: load.map((l) => Number(l.toFixed(2))) },
        l2MemMiB: L2_MEM_MIB,
        npb: `${KERNEL}.${CLASS}`,
        runs: RUNS,
        // testbedUp with one netns and one qemu host: the L1 boot (spawn → SSH) dominates.
        l1ReadyS: Number((upMs / 1000).toFixed(1)),
        vmReadyS: {
          netns: Number((netns.readyMs / 1000).toFixed(1)),
          l2: Number((l2.readyMs / 1000).toFixed(1)),
        },
        npbWallS: { netns: Number(median(netns.wallS).toFixed(1)), l2: Number(median(l2.wallS).toFixed(1)) },
        npbTimedS: { netns: median(netns.npbS), l2: median(l2.npbS) },
        l2Slowdown: Number((median(l2.wallS) / median(netns.wallS)).toFixed(1)),
        uptime: (await promisify(execFile)("uptime")).stdout.trim(),
      };
      console.log(JSON.stringify(result));
    } finally {
      for (const c of clusters) await c.close().catch(() => undefined);
      if (testbed) await testbedDown(testbed.runDir).catch(() => undefined);
    }
  },
  3_600_000,
);
