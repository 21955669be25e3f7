/** What `vpc testbed` prints (pure: every function maps a result to text). */
import type { EpochMetrics, RestoreReport, RunResult, TestbedReport } from "@vpc/controller";

function table(header: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (r: readonly string[]): string =>
    r
      .map((c, i) => c.padEnd(widths[i]!))
      .join("  ")
      .trimEnd();
  return [line(header), ...rows.map(line)];
}

/** "0–3 (4)", "0, 2 (2)" or "none". */
export function formatEpochList(epochs: readonly number[]): string {
  if (epochs.length === 0) return "none";
  const contiguous = epochs.every((e, i) => i === 0 || e === epochs[i - 1]! + 1);
  const list =
    epochs.length === 1
      ? `${epochs[0]}`
      : contiguous
        ? `${epochs[0]}–${epochs.at(-1)}`
        : epochs.length > 6
          ? `${epochs.slice(0, 3).join(", ")}, …, ${epochs.at(-1)}`
          : epochs.join(", ");
  return `${list} (${epochs.length})`;
}

/** Pure: `[command, comment]` pairs as lines with the comments in one column. */
function commented(pairs: readonly (readonly [string, string])[]): string[] {
  const w = Math.max(...pairs.map(([c]) => c.length));
  return pairs.map(([c, why]) => (why ? `  ${c.padEnd(w)}   # ${why}` : `  ${c}`));
}

/** The next commands after `up`/`status` (`configArg`: "" or " --config FILE"). */
export function nextCommands(r: TestbedReport, configArg: string): string[] {
  const tb = "vpc testbed";
  const first = r.hosts[0];
  const vm = r.vms[0]?.name ?? "VM";
  const killed = r.vms.some((v) => v.state === "killed");
  const pairs: (readonly [string, string])[] = [
    ...(killed ? [[`${tb} restore${configArg}`, "bring the killed VMs back"] as const] : []),
    [`${tb} run${configArg}`, "the config's NPB kernel across the VMs; prints Verification"],
    [`${tb} run --checkpoint-every 1000${configArg}`, "the same with a global checkpoint every second"],
    [`${tb} checkpoint${configArg}`, "one global checkpoint; prints its metrics"],
    [`${tb} kill${configArg}`, "failure injection: SIGKILL every VM"],
    [`${tb} restore${configArg}`, "every VM from the newest committed epoch"],
    [`${tb} exec ${vm}${configArg} -- uname -a`, `a command in ${vm}`],
  ];
  if (first !== undefined)
    pairs.push(
      [`dbclient -y -i ${r.clientKey} root@${first.ip}`, `log in to host ${first.name}`],
      [`ip netns exec ${first.netns} sh`, `a shell in host ${first.name}'s namespace`],
    );
  pairs.push([`${tb} status${configArg}`, ""], [`${tb} down${configArg}`, ""]);
  return ["next:", ...commented(pairs)];
}

/** The human status: hosts, daemon, VMs, epochs, problems and the commands to go on with. */
export function formatTestbedStatus(r: TestbedReport, configArg: string): string {
  if (r.state === "down") return `testbed ${r.config}: down (no state in ${r.runDir})`;
  const out = [`testbed ${r.config}: ${r.state}   run dir ${r.runDir}   bridge ${r.bridge ?? "?"}`];
  if (r.daemon)
    out.push(
      `daemon: pid ${r.daemon.pid}${r.daemon.phase ? `, ${r.daemon.phase}` : ""}   log ${r.daemon.log}`,
    );
  out.push(
    "",
    ...table(
      ["HOST", "NAMESPACE", "FABRIC IP", "SSH", "STATE"],
      r.hosts.map((h) => [
        h.name,
        h.netns,
        h.ip,
        h.ssh,
        h.problems.length === 0 ? "ok" : h.problems.join("; "),
      ]),
    ),
    "",
    ...table(
      ["VM", "HOST", "DATA IP", "STATE"],
      r.vms.map((v) => [v.name, v.host, v.dataIp, v.problem ? `${v.state}: ${v.problem}` : v.state]),
    ),
    "",
    `committed epochs: ${formatEpochList(r.committedEpochs)}` +
      (r.restoredFrom === undefined ? "" : `   (VMs restored from epoch ${r.restoredFrom})`),
  );
  if (r.run)
    out.push(
      `running: ${r.run.workload} since ${r.run.startedAt}` +
        (r.run.checkpointEveryMs === undefined ? "" : `, a checkpoint every ${r.run.checkpointEveryMs} ms`),
    );
  if (r.problems.length > 0) {
    out.push("", "problems:", ...r.problems.map((p) => `  - ${p}`));
    if (r.state === "starting")
      out.push("", `wait: vpc testbed up${configArg}   # follows its log until the VMs are up`);
    // VM problems alone (a kill) are fixed by restore; anything else by making it anew.
    if (r.state === "broken")
      out.push("", `fix: vpc testbed up${configArg}   # removes what is left of it and makes it anew`);
  }
  if (r.state === "up") out.push("", ...nextCommands(r, configArg));
  return out.join("\n");
}

const ms = (x: number): string => `${x.toFixed(1)} ms`;
const perVm = (m: Readonly<Record<string, number>>): string =>
  Object.entries(m)
    .map(([vm, v]) => `${vm} ${ms(v)}`)
    .join(", ");

/** One global checkpoint, with ARCHITECTURE §2 names. */
export function formatCheckpoint(m: EpochMetrics): string {
  return [
    `epoch             ${m.epoch} (${m.full ? "full" : "incremental"}), committed`,
    `VC downtime       ${ms(m.vcDowntimeMs)} (first VM paused → last VM resumed)`,
    `pause time        ${perVm(m.pauseMs)}`,
    `solo VM downtime  ${perVm(m.soloDowntimeMs)}`,
    `checkpoint size   ${(m.checkpointBytes / 1e6).toFixed(1)} MB`,
    `frames            held ${m.heldFrames}, logged ${m.loggedFrames}, in channel logs ${m.channelLogFrames}`,
    `commit            ${ms(m.commitMs)} (prepare sent → commit point durable)`,
  ].join("\n");
}

export function formatRestore(r: RestoreReport): string {
  return [
    `restored epoch    ${r.epoch}${r.killedFirst ? " (the running VMs were killed first)" : ""}`,
    `restore time      ${(r.totalMs / 1000).toFixed(2)} s for the whole cluster (request → every VM running)`,
    ...r.vms.map(
      (v) =>
        `  ${v.vmId.padEnd(14)}  ${(v.ms / 1000).toFixed(2)} s, ${v.replayed} channel-log frames replayed`,
    ),
  ].join("\n");
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? Number.NaN : (s[(s.length - 1) >> 1]! + s[s.length >> 1]!) / 2;
};

export function formatRunResult(r: RunResult): string {
  const lines = r.verificationLines.map((l) => `  ${l}`);
  for (const b of r.results)
    lines.push(
      `${b.kernel.toUpperCase()}.${b.class}: ${b.seconds.toFixed(2)} s, ${b.mopsTotal.toFixed(2)} Mop/s total, ${b.processes} processes, ${b.verified ? "verified" : "NOT verified"}`,
    );
  lines.push(
    `result            ${r.verified ? "VERIFIED" : "NOT VERIFIED"} (${r.workload}, ${r.results.length} result block${r.results.length === 1 ? "" : "s"})` +
      (r.finalizeHang
        ? "; mpiexec hung in MPI_Finalize after the result (MPICH 4.0.2, docs/cluster.md)"
        : ""),
  );
  if (r.epochs.length > 0 || r.abortedEpochs > 0) {
    const incr = r.epochs.filter((e) => !e.full);
    const vc = (incr.length > 0 ? incr : r.epochs).map((e) => e.vcDowntimeMs);
    lines.push(
      `checkpoints       ${r.epochs.length} committed, ${r.abortedEpochs} aborted` +
        (vc.length > 0
          ? `; VC downtime median ${ms(median(vc))}${incr.length > 0 ? " (incremental)" : ""}, max ${ms(Math.max(...r.epochs.map((e) => e.vcDowntimeMs)))}`
          : ""),
    );
  }
  for (const x of r.restoredFrom)
    lines.push(
      `restored during the run from epoch ${x.epoch} (${x.computing ? "the kernel was computing in it" : "the kernel had already finished in it"})`,
    );
  lines.push(`wall time         ${(r.wallMs / 1000).toFixed(1)} s`);
  if (!r.verified) lines.push("", "workload output:", r.output);
  return lines.join("\n");
}
