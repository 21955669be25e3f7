/**
 * The NPB workload of a cluster run, shared by `vpc cluster demo` and the testbed daemon's
 * `run`: the command that starts it in the first VM, and pure readings of its output (which
 * lives in guest RAM, so it rolls back with a restore): started, finished, the MPICH finalize
 * hang, and the verdict.
 */
import { type NpbResult, parseNpbResult } from "@vpc/npb";
import { type ClusterConfig, clusterVms } from "./config.js";

/** Where the workload writes its output (guest RAM: it rolls back with a restore). */
export const OUT = "/root/npb.out";
/** Printed with the exit status once the workload command ends. */
export const DONE = "VPC-NPB-DONE";
/** NPB prints this table header once every rank has initialised and the timed iterations begin. */
export const STARTED = /^\s+iteration\s/m;

/** The complete NPB result blocks in `out`, parsed (a block still being printed is left out). */
export function resultBlocks(out: string): NpbResult[] {
  const parsed: NpbResult[] = [];
  for (const block of out.split(/(?=\n\s*\S+ Benchmark Completed\.)/)) {
    if (!block.includes("Benchmark Completed.")) continue;
    try {
      parsed.push(parseNpbResult(block));
    } catch {
      // Not complete yet: the next read of the output will have the rest.
    }
  }
  return parsed;
}

export function workloadCommand(config: ClusterConfig): string {
  const vms = clusterVms(config).map((v) => v.name);
  const w = config.workload;
  // UCX would otherwise pick eth0, the management NIC, whose address (10.0.2.15) every guest shares.
  const one = `mpiexec -launcher ssh -iface eth1 -genv UCX_NET_DEVICES eth1 -hosts ${vms.join(",")} -n ${w.np} /opt/npb/bin/${w.kernel} ${w.class}`;
  const loop = `i=0; while [ $i -lt ${w.repeat} ]; do i=$((i+1)); ${one} || exit 1; done`;
  // setsid (busybox has no nohup), in the background with every descriptor redirected, so the SSH exec returns at once; the
  // output lives in guest RAM and so survives a restore.
  // The loop runs in a subshell so that a failed run (exit 1) still prints the marker with its status.
  return `cd /root && setsid sh -c '(${loop}); echo ${DONE} rc=$?' >${OUT} 2>&1 </dev/null &`;
}

/**
 * Pure: a warning when the MPI ranks of a run want more cores than this machine has. Only VMs on
 * netns hosts run here (qemu and ssh hosts bring their own cores). Each rank's VM runs under TCG,
 * and an MPI rank busy-polls while it waits, which keeps its vCPU thread and QEMU's main loop
 * busy: with more ranks than cores a kernel that takes seconds takes minutes or stalls
 * (docs/cluster.md, "How many VMs"). Undefined when the run fits.
 */
export function oversubscription(config: ClusterConfig, np: number, cores: number): string | undefined {
  const localHosts = new Set(config.hosts.filter((h) => h.kind === "netns").map((h) => h.name));
  const vms = clusterVms(config);
  const local = vms.filter((v) => localHosts.has(v.hostId));
  // workloadCommand lists every VM once in `-hosts`: mpiexec places rank i on VM i mod #VMs.
  let localRanks = 0;
  for (let rank = 0; rank < np; rank++) if (localHosts.has(vms[rank % vms.length]!.hostId)) localRanks++;
  if (localRanks <= cores) return undefined;
  return (
    `${localRanks} MPI ranks on this machine's ${local.length} VMs and ${cores} cores: waiting ranks busy-poll, ` +
    'so expect the kernel to run many times slower or stall (one VM per core: testbed/demo.json; docs/cluster.md, "How many VMs")'
  );
}

/** Pure: where a run stands, from its output so far. */
export function runProgress(
  out: string,
  repeat: number,
  now: number,
  graceMs: number,
  allPrintedAt: number | undefined,
): { started: boolean; done: boolean; finalizeHang: boolean; allPrintedAt: number | undefined } {
  const started = STARTED.test(out) || out.includes(DONE);
  if (out.includes(DONE)) return { started, done: true, finalizeHang: false, allPrintedAt };
  // MPICH 4.0.2 ch4:ucx may hang in MPI_Finalize after printing the result (docs/cluster.md):
  // once every block is complete only MPI_Finalize is left; wait `graceMs`, then stop waiting.
  const printedAt = allPrintedAt ?? (resultBlocks(out).length >= repeat ? now : undefined);
  const hang = printedAt !== undefined && now - printedAt > graceMs;
  return { started, done: hang, finalizeHang: hang, allPrintedAt: printedAt };
}

/** Pure: the verdict on a finished run's output. */
export function runVerdict(
  out: string,
  repeat: number,
  finalizeHang: boolean,
): { verified: boolean; verificationLines: string[]; results: NpbResult[] } {
  const results = resultBlocks(out);
  const verificationLines = out
    .split("\n")
    .filter((l) => /Verification\s*=/.test(l))
    .map((l) => l.trim());
  const exitedOk = out.includes(`${DONE} rc=0`) || finalizeHang;
  const verified = exitedOk && results.length === repeat && results.every((r) => r.verified);
  return { verified, verificationLines, results };
}
