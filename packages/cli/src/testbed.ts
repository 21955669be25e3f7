/**
 * `vpc testbed up|status|run|checkpoint|kill|restore|exec|down`: the long-lived testbed of a
 * cluster config. `up` leaves a detached testbed daemon (the controller) that keeps the VMs
 * alive; every other command talks to it over `<runDir>/control.sock`.
 */
import { existsSync, realpathSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { ClusterConfigError, ClusterError, type EpochMetrics, loadClusterConfig } from "@vpc/cluster";
import { ControllerError } from "@vpc/controller";
import {
  type ControlRequest,
  connectTestbed,
  type DoctorReport,
  formatDoctorReport,
  namedTestbedDir,
  namedTestbedDown,
  namedTestbedsRoot,
  namedTestbedUp,
  type RestoreReport,
  type RunResult,
  runDoctor,
  runTestbedDaemon,
  TestbedError,
  testbedReport,
  validateControlRequest,
} from "@vpc/testbed";
import type { CliIo } from "./cli-common.js";
import { usageErrorOf } from "./cli-common.js";
import { defaultConfig } from "./cluster.js";
import {
  formatCheckpoint,
  formatConfigError,
  formatRestore,
  formatRunResult,
  formatTestbedStatus,
  type TestbedCommandStyle,
} from "./testbed-format.js";

const COMMON = `Options:
  --config FILE   cluster description (default testbed/default.json of the repository)
  --json          print the result as JSON
  -h, --help      show this help`;

const WORKFLOW = `Workflow (each step is a command; up leaves a daemon holding the VMs, down removes it all):
  up → run → checkpoint → kill → restore → down

Example on the default config, testbed/default.json ("vpc" is node packages/cli/dist/bin.js in the
repository; make testbed ACTION [CONFIG=FILE] [ARGS="..."] runs the same):
  vpc testbed up                               # hosts + VMs booted; prints them and the next commands
  vpc testbed run --checkpoint-every 1000      # NPB across the VMs, a global checkpoint every second
  vpc testbed checkpoint                       # one more global checkpoint; prints its epoch
  vpc testbed kill                             # SIGKILL every VM (failure injection)
  vpc testbed restore                          # every VM back from the newest committed epoch
  vpc testbed exec vm1 -- uname -a             # a command in a VM
  vpc testbed down                             # remove everything; exit 0 when nothing is left
Another config: --config testbed/ci.json (small) or testbed/nested.json (two qemu hosts).`;

const SUB_USAGE: Record<string, string> = {
  up: `vpc testbed up [--config FILE] [--json]
  Checks the machine (vpc doctor) and the config (fields, RAM, a free fabric prefix, ssh hosts'
  keys and logins: a bad one is rejected naming the field, with nothing made), then starts the
  testbed daemon: it creates the hosts (netns: namespace, veth on the fabric bridge, dropbear;
  qemu: an L1 VM on the bridge; ssh: an existing machine, agent reused or copied), boots every VM
  of the config and stays in the background holding them. Prints hosts, VMs, addresses and the
  next commands. A second up prints the status; a broken testbed is removed first and made anew.`,
  status: `vpc testbed status [--config FILE] [--json]
  Hosts (namespace, link, dropbear), the daemon, each VM (probed over SSH), committed epochs.
  Exit 1 naming what is wrong (a host or the daemon gone, a VM killed or not answering).`,
  run: `vpc testbed run [--kernel K] [--class C] [--np N] [--checkpoint-every MS] [--timeout-ms MS]
  Runs an NPB kernel across the VMs with mpiexec (default: the config's workload) and waits for
  its result; prints it and the Verification line. With --checkpoint-every, a global checkpoint
  every MS milliseconds during the run. A kill and restore from another shell during the run is
  waited out (the workload's output lives in guest RAM and rolls back with the restore).
  --timeout-ms bounds the whole run (default 600000; time spent killed counts). Ctrl-C cancels
  the run and kills the kernel in the guests. Exit 1 when the result is not verified.`,
  checkpoint: `vpc testbed checkpoint [--config FILE] [--json]
  One global checkpoint of every VM; prints its epoch and metrics (VC downtime, pause time, solo
  VM downtime, size, frames).`,
  kill: `vpc testbed kill [--config FILE] [--json]
  Failure injection: every VM's QEMU is SIGKILLed and every host agent ended. The hosts stay;
  "vpc testbed restore" brings the VMs back from the newest committed epoch.`,
  restore: `vpc testbed restore [--epoch N] [--config FILE] [--json]
  VC restore: every VM from committed epoch N (default the newest), with the channel logs
  replayed. Running VMs are killed first (a rollback). Prints the restore times.`,
  exec: `vpc testbed exec VM [--config FILE] [--json] -- COMMAND...
  Runs COMMAND in VM's shell over SSH; prints its output; exits with its exit status.`,
  down: `vpc testbed down [--config FILE] [--json]
  Asks the daemon to stop the VMs (kills it by PID when it does not answer), then removes every
  host, namespace, link, process, socket and /dev/shm file of the testbed. Exit 0 when nothing
  is left (also when nothing was up). SIGTERM or SIGINT to the daemon stops its VMs the same way
  but keeps the hosts (status then says the daemon is not running); down or up clean up.`,
};

const TESTBED_USAGE = `Usage: vpc testbed <command> [--config FILE] [--json]

Commands:
  up           create the hosts, boot the VMs, leave the testbed daemon running
  status       hosts, daemon, VMs and committed epochs; exit 1 with what is wrong
  run          run an NPB kernel across the VMs (--kernel, --class, --np, --checkpoint-every)
  checkpoint   one global checkpoint; prints its metrics
  kill         SIGKILL every VM (failure injection)
  restore      VC restore from a committed epoch (--epoch N, default the newest)
  exec VM -- CMD   run a command in a VM
  down         stop the daemon and remove everything of the testbed

State: /run/vpc-testbed/<config name>/ (testbed.json, daemon.pid, daemon.log, control.sock);
$VPC_TESTBED_DIR replaces /run/vpc-testbed. "vpc testbed <command> --help" for details.

${WORKFLOW}

${COMMON}

Exit status: 0 done / healthy / verified, 1 failed or broken, 2 usage error.`;

export type TestbedCommand = "up" | "status" | "down" | "run" | "checkpoint" | "kill" | "restore" | "exec";

export interface TestbedArgs {
  readonly command: TestbedCommand | "daemon";
  readonly config: string | undefined;
  readonly json: boolean;
  /** The request for the daemon (run, checkpoint, kill, restore, exec). */
  readonly request?: ControlRequest;
  /** `daemon` only: its run directory. */
  readonly runDir?: string;
}

class TestbedUsageError extends Error {
  override readonly name = "TestbedUsageError";
}

const COMMANDS = ["up", "status", "down", "run", "checkpoint", "kill", "restore", "exec", "daemon"];

function intArg(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) throw new TestbedUsageError(`--${name} must be a non-negative integer, got ${v}`);
  return Number(v);
}

/** Parses the arguments after `vpc testbed`; `{help}` means help was asked for. */
export function parseTestbedArgs(args: readonly string[]): TestbedArgs | { help: string } {
  const { values, positionals } = parseArgs({
    args: [...args],
    strict: true,
    allowPositionals: true,
    options: {
      config: { type: "string" },
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
      kernel: { type: "string" },
      class: { type: "string" },
      np: { type: "string" },
      "checkpoint-every": { type: "string" },
      "timeout-ms": { type: "string" },
      epoch: { type: "string" },
      "run-dir": { type: "string" },
    },
  });
  const [command, ...rest] = positionals;
  if (values.help) {
    const sub = command === undefined ? undefined : SUB_USAGE[command];
    return { help: sub === undefined ? TESTBED_USAGE : `${sub}\n\n${COMMON}\n\n${WORKFLOW}` };
  }
  if (command === undefined) throw new TestbedUsageError("missing command (up, status, run, …, down)");
  if (!COMMANDS.includes(command)) throw new TestbedUsageError(`unknown command "${command}"`);
  const allowed: Record<string, readonly string[]> = {
    run: ["kernel", "class", "np", "checkpoint-every", "timeout-ms"],
    restore: ["epoch"],
    daemon: ["run-dir"],
  };
  for (const k of ["kernel", "class", "np", "checkpoint-every", "timeout-ms", "epoch", "run-dir"])
    if (values[k as keyof typeof values] !== undefined && !(allowed[command] ?? []).includes(k))
      throw new TestbedUsageError(`--${k} is not an option of ${command}`);
  const base = { command: command as TestbedCommand, config: values.config, json: values.json };
  if (command !== "exec" && rest.length > 0) throw new TestbedUsageError(`unexpected argument: ${rest[0]}`);
  const request = (method: string, params: Record<string, unknown>): ControlRequest => {
    try {
      return validateControlRequest(method, params);
    } catch (e) {
      throw new TestbedUsageError((e as Error).message.replace(/^bad request: /, ""));
    }
  };
  switch (command) {
    case "daemon":
      if (values["run-dir"] === undefined) throw new TestbedUsageError("daemon needs --run-dir");
      return { ...base, command: "daemon", runDir: values["run-dir"] };
    case "run":
      return {
        ...base,
        request: request("run", {
          kernel: values.kernel?.toLowerCase(),
          class: values.class?.toUpperCase(),
          np: intArg("np", values.np),
          checkpointEveryMs: intArg("checkpoint-every", values["checkpoint-every"]),
          timeoutMs: intArg("timeout-ms", values["timeout-ms"]),
        }),
      };
    case "checkpoint":
    case "kill":
      return { ...base, request: { method: command } };
    case "restore":
      return { ...base, request: request("restore", { epoch: intArg("epoch", values.epoch) }) };
    case "exec": {
      const [vm, ...cmd] = rest;
      if (vm === undefined || cmd.length === 0) throw new TestbedUsageError("exec needs VM -- COMMAND");
      return { ...base, request: request("exec", { vm, command: cmd.join(" ") }) };
    }
    default:
      return base;
  }
}

export interface TestbedDeps {
  /** Default: the real `vpc doctor` checks. */
  readonly runDoctor?: () => Promise<DoctorReport>;
  /** argv of the daemon for a config file and run directory (default: this bin, `testbed daemon`). */
  readonly daemonCommand?: (configPath: string, runDir: string) => string[];
  /** `daemon` only: aborted on SIGTERM/SIGINT (bin.ts), it then stops the VMs and exits 0. */
  readonly signal?: AbortSignal;
}

/** Doctor checks only some host kinds need (ssh hosts are other machines: they need none of these). */
const CHECK_KINDS: Readonly<Record<string, readonly string[]>> = {
  tun: ["qemu"],
  netns: ["netns"],
  bridge: ["netns", "qemu"],
};

/**
 * Pure: the doctor's report for `up` of a config: a check that none of its hosts' kinds needs
 * (e.g. the bridge for a testbed of ssh hosts) cannot stop it; it is kept as a warning.
 */
export function doctorForConfig(report: DoctorReport, kinds: readonly string[]): DoctorReport {
  const checks = report.checks.map((c) => {
    const needers = CHECK_KINDS[c.id];
    if (needers === undefined || kinds.some((k) => needers.includes(k))) return c;
    return {
      ...c,
      required: false,
      detail: `${c.detail} (not needed: no ${needers.join(" or ")} host)`,
      ...(c.status === "missing" ? { status: "warn" as const } : {}),
    };
  });
  return { ok: checks.every((c) => !c.required || c.status !== "missing"), checks };
}

/** This CLI's own bin (dist/bin.js beside the bundle chunk this code is in). */
function defaultDaemonCommand(configPath: string, runDir: string): string[] {
  const bin = fileURLToPath(new URL("./bin.js", import.meta.url));
  return [process.execPath, bin, "testbed", "daemon", "--config", configPath, "--run-dir", runDir];
}

/**
 * How this command was typed: under `make testbed` (make puts MAKELEVEL into its commands'
 * environment), as `vpc` on the PATH, or as this bin by path; `configPath` as the user can type it.
 */
export function commandStyle(
  configPath: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
  cwd = process.cwd(),
): TestbedCommandStyle {
  // Relative when it is below the working directory (testbed/nested.json), else as given.
  const rel = configPath === undefined ? undefined : relative(cwd, configPath);
  const config = rel === undefined || rel === "" || rel.startsWith("..") ? configPath : rel;
  if (env.MAKELEVEL !== undefined) return { kind: "make", config };
  const bin = fileURLToPath(new URL("./bin.js", import.meta.url));
  const onPath = (env.PATH ?? "")
    .split(":")
    .some((d) => d !== "" && existsSync(join(d, "vpc")) && realpathOr(join(d, "vpc")) === realpathOr(bin));
  return {
    kind: "cli",
    prefix: onPath ? "vpc testbed" : `node ${relative(cwd, bin) || bin} testbed`,
    config,
  };
}

function realpathOr(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}

export async function runTestbedCli(
  args: readonly string[],
  io: CliIo,
  deps: TestbedDeps = {},
): Promise<number> {
  let parsed: TestbedArgs | { help: string };
  try {
    parsed = parseTestbedArgs(args);
  } catch (e) {
    io.stderr(`vpc testbed: ${usageErrorOf(e)}\n\n${TESTBED_USAGE}\n`);
    return 2;
  }
  if ("help" in parsed) {
    io.stdout(`${parsed.help}\n`);
    return 0;
  }
  const { command, json } = parsed;
  const configPath = resolve(parsed.config ?? defaultConfig());
  const style = commandStyle(parsed.config === undefined ? undefined : configPath);
  const out = (value: unknown, text: string): void =>
    io.stdout(json ? `${JSON.stringify(value, null, 2)}\n` : `${text}\n`);
  try {
    const config = await loadClusterConfig(configPath);
    const root = namedTestbedsRoot();
    const runDir = parsed.command === "daemon" ? resolve(parsed.runDir!) : namedTestbedDir(config.name, root);
    switch (command) {
      case "daemon": {
        const grace = process.env.VPC_FINALIZE_GRACE_MS;
        const code = await runTestbedDaemon({
          config,
          runDir,
          log: (l) => io.stdout(`${l}\n`),
          ...(deps.signal ? { signal: deps.signal } : {}),
          ...(grace && /^\d+$/.test(grace) ? { finalizeGraceMs: Number(grace) } : {}),
        });
        // The daemon's whole job is done: SSH clients and timers of closed hosts must not keep it.
        process.exit(code);
        return code;
      }
      case "status": {
        const s = await testbedReport(config, runDir);
        out(s, formatTestbedStatus(s, style));
        return s.problems.length > 0 ? 1 : 0;
      }
      case "down": {
        const { removed, left } = await namedTestbedDown(config, runDir, root);
        out(
          { removed, left },
          [
            ...removed.map((r) => `removed ${r}`),
            left.length > 0
              ? `still there: ${left.join(", ")}`
              : `testbed ${config.name}: down${removed.length === 0 ? " (nothing was up)" : ""}`,
          ].join("\n"),
        );
        return left.length === 0 ? 0 : 1;
      }
      case "up": {
        const report = doctorForConfig(
          await (deps.runDoctor ?? runDoctor)(),
          config.hosts.map((h) => h.kind),
        );
        if (!report.ok) {
          io.stderr(
            `${formatDoctorReport(report)}\n\nvpc testbed up: the machine is missing required pieces (above)\n`,
          );
          return 1;
        }
        if (!json) io.stdout(`doctor: ok; testbed ${config.name} in ${runDir}\n`);
        const r = await namedTestbedUp({
          config,
          runDir,
          root,
          daemonCommand: (deps.daemonCommand ?? defaultDaemonCommand)(configPath, runDir),
          ...(json ? {} : { onLine: (l: string) => io.stdout(`  ${l}\n`) }),
        });
        if (!json) {
          for (const x of r.repaired) io.stdout(`removed (broken earlier testbed) ${x}\n`);
          if (!r.created && !r.joined) io.stdout("already up: nothing to do\n");
        }
        out({ ...r.status, created: r.created, repaired: r.repaired }, formatTestbedStatus(r.status, style));
        return r.status.state === "up" ? 0 : 1;
      }
      default:
        return await daemonCommand(parsed, config, runDir, io, out);
    }
  } catch (e) {
    if (ClusterError.isInstance(e) && e.code === "CLUSTER_CONFIG" && e instanceof ClusterConfigError) {
      io.stderr(`${formatConfigError(command, configPath, e)}\n`);
      return 1;
    }
    const code =
      ClusterError.isInstance(e) || ControllerError.isInstance(e) || TestbedError.isInstance(e)
        ? ` [${e.code}]`
        : "";
    io.stderr(`vpc testbed ${command}: failed${code}: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
}

/** run, checkpoint, kill, restore, exec: one request to the daemon. */
async function daemonCommand(
  parsed: TestbedArgs,
  config: Awaited<ReturnType<typeof loadClusterConfig>>,
  runDir: string,
  io: CliIo,
  out: (value: unknown, text: string) => void,
): Promise<number> {
  const request = parsed.request!;
  const client = await connectTestbed(
    config,
    runDir,
    parsed.json || request.method !== "run" ? undefined : (l) => io.stdout(`  ${l}\n`),
  );
  try {
    switch (request.method) {
      case "run": {
        const r = await client.call<RunResult>(request);
        out(r, formatRunResult(r));
        return r.verified ? 0 : 1;
      }
      case "checkpoint": {
        const m = await client.call<EpochMetrics>(request);
        out(m, formatCheckpoint(m));
        return 0;
      }
      case "kill": {
        const r = await client.call<{ vms: string[] }>(request);
        out(r, `killed ${r.vms.join(", ")} (SIGKILL); vpc testbed restore brings them back`);
        return 0;
      }
      case "restore": {
        const r = await client.call<RestoreReport>(request);
        out(r, formatRestore(r));
        return 0;
      }
      case "exec": {
        const r = await client.call<{ stdout: string; stderr: string; exitCode: number | null }>(request);
        if (parsed.json) out(r, "");
        else {
          io.stdout(r.stdout);
          io.stderr(r.stderr);
        }
        return r.exitCode ?? 1;
      }
      default:
        throw new Error(`no daemon request for ${request.method}`);
    }
  } finally {
    client.close();
  }
}
