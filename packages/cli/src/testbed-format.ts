/** What `vpc testbed` prints (pure: every function maps a result to text). */
import type { EpochMetrics } from "@vpc/cluster";
import type { RestoreReport, RunResult, TestbedReport } from "@vpc/testbed";

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

/** How to get a shell on a host: dropbear's client for the testbed's own hosts, ssh for an ssh host. */
function hostLogin(h: TestbedReport["hosts"][number]): (readonly [string, string])[] {
  const m = /^(.*)@(.*):(\d+)$/.exec(h.ssh);
  const [user, address, port] = m ? [m[1]!, m[2]!, m[3]!] : ["root", h.ip, "22"];
  if (h.kind === "ssh")
    return [[`ssh -i ${h.key} -p ${port} ${user}@${address}`, `log in to ssh host ${h.name}`]];
  const login = [`dbclient -y -i ${h.key} ${user}@${address}`, `log in to ${h.kind} host ${h.name}`] as const;
  return h.netns === ""
    ? [login]
    : [login, [`ip netns exec ${h.netns} sh`, `a shell in host ${h.name}'s namespace`]];
}

/**
 * How the user runs testbed commands, so the printed next commands can be typed as they are:
 * `make testbed …` (CONFIG=, ARGS=) under make, else the CLI (`vpc testbed` or `node …/bin.js testbed`).
 */
export type TestbedCommandStyle =
  | { readonly kind: "make"; readonly config: string | undefined }
  | { readonly kind: "cli"; readonly prefix: string; readonly config: string | undefined };

/** Pure: the command line of `action` with `args` (e.g. "vm1 -- uname -a") in `style`. */
function testbedCommand(style: TestbedCommandStyle, action: string, args = ""): string {
  if (style.kind === "make")
    return `make testbed ${action}${style.config ? ` CONFIG=${style.config}` : ""}${args ? ` ARGS="${args}"` : ""}`;
  // --config before the arguments: everything after exec's "--" is the guest's command.
  return `${style.prefix} ${action}${style.config ? ` --config ${style.config}` : ""}${args ? ` ${args}` : ""}`;
}

/** The next commands after `up`/`status`. */
function nextCommands(r: TestbedReport, style: TestbedCommandStyle): string[] {
  const tb = (action: string, args?: string): string => testbedCommand(style, action, args);
  const first = r.hosts[0];
  const vm = r.vms[0]?.name ?? "VM";
  const killed = r.vms.some((v) => v.state === "killed");
  const pairs: (readonly [string, string])[] = [
    ...(killed ? [[tb("restore"), "bring the killed VMs back"] as const] : []),
    [tb("run"), "the config's NPB kernel across the VMs; prints Verification"],
    [tb("run", "--checkpoint-every 1000"), "the same with a global checkpoint every second"],
    [tb("checkpoint"), "one global checkpoint; prints its metrics"],
    [tb("kill"), "failure injection: SIGKILL every VM"],
    [tb("restore"), "every VM from the newest committed epoch"],
    [tb("exec", `${vm} -- uname -a`), `a command in ${vm}`],
  ];
  if (first !== undefined) pairs.push(...hostLogin(first));
  pairs.push([tb("status"), ""], [tb("down"), ""]);
  return ["next:", ...commented(pairs)];
}

/** The human status: hosts, daemon, VMs, epochs, problems and the commands to go on with. */
export function formatTestbedStatus(r: TestbedReport, style: TestbedCommandStyle): string {
  if (r.state === "down") return `testbed ${r.config}: down (no state in ${r.runDir})`;
  const out = [
    `testbed ${r.config}: ${r.state}   run dir ${r.runDir}   bridge ${r.bridge ?? "none (ssh hosts only)"}`,
  ];
  if (r.daemon)
    out.push(
      `daemon: pid ${r.daemon.pid}${r.daemon.phase ? `, ${r.daemon.phase}` : ""}   log ${r.daemon.log}`,
    );
  out.push(
    "",
    ...table(
      ["HOST", "KIND", "NAMESPACE", "SSH", "STATE"],
      r.hosts.map((h) => [
        h.name,
        h.kind,
        h.netns === "" ? "-" : h.netns,
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
      out.push("", `wait: ${testbedCommand(style, "up")}   # follows its log until the VMs are up`);
    // VM problems alone (a kill) are fixed by restore; anything else by making it anew.
    if (r.state === "broken")
      out.push("", `fix: ${testbedCommand(style, "up")}   # removes what is left of it and makes it anew`);
  }
  if (r.state === "up") out.push("", ...nextCommands(r, style));
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
    `frames            held ${m.heldFrames}, logged ${m.loggedFrames}, in channel logs ${m.channelLogFrames}, dropped ${m.droppedFrames}`,
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

/** Advice for the validator's messages that say what is wrong but not what to write instead. */
function configAdvice(field: string, detail: string): string | undefined {
  if (/^hosts\[\d+\]\.kind$/.test(field))
    return 'kind is "netns" (default: a namespace on this machine), "qemu" (an emulated host, docs/nested.md) or "ssh" (an existing machine: address, user, key)';
  if (/^hosts\[\d+\]\.address$/.test(field) && detail.includes("is already"))
    return "every host needs its own address: the fabric bridge is .1 of fabricPrefix, netns and qemu hosts take .2, .3, … in config order; give an ssh host an address outside fabricPrefix";
  if (field === "$")
    return "the configs in the repository are testbed/default.json, testbed/demo.json, testbed/ci.json and testbed/nested.json";
  return undefined;
}

/** A rejected config: the file, the field and what is wrong, advice, and that nothing was made. */
export function formatConfigError(
  command: string,
  path: string,
  e: { readonly field: string; readonly message: string },
): string {
  const detail = e.message.replace(/^invalid cluster config: /, "");
  const advice = configAdvice(e.field, detail);
  return [
    `vpc testbed ${command}: bad config ${path} [CLUSTER_CONFIG]`,
    `  ${detail}`,
    ...(advice === undefined ? [] : [`  ${advice}`]),
    `nothing was started or created; fix ${e.field === "$" ? "the file" : e.field} and run it again (every field: testbed/README.md, "Config fields")`,
  ].join("\n");
}
