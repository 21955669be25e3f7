/** The `vpc` command line: argument parsing, output and exit codes. */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { ControllerError, createJsonLogger, type LogLevel, reapNow } from "@vpc/controller";
import { runEvalCli, runReportCli } from "@vpc/eval";
import { runPredictorCli } from "@vpc/predictor";
import { type CliIo, EXIT_FAILED, EXIT_OK, EXIT_USAGE, usageErrorOf } from "./cli-common.js";
import { runClusterCli } from "./cluster.js";
import { type DemoOptions, type DemoResult, runDemo } from "./demo.js";
import { runDoctorCommand } from "./doctor.js";
import { runFaultsCli } from "./faults.js";
import { runStoreCli } from "./store-commands.js";
import { runTestbedCli } from "./testbed.js";
import { runCheckpointCommand, runRestoreCommand } from "./vm-commands.js";

export { type CliIo, EXIT_FAILED, EXIT_OK, EXIT_USAGE };

const USAGE = `Usage: vpc <command> [options]

Commands:
  demo                      boot a VM, checkpoint it, kill it, restore it, and check that it continued
  testbed up|status|run|checkpoint|kill|restore|exec|down
                            the long-lived testbed of a config: hosts and VMs kept by a daemon
  cluster demo|up|down      netns hosts, a VM cluster running NPB with global checkpoints, kill + restore
  checkpoint --store DIR    boot a VM and take checkpoints with an engine (stop-copy, cow, vpc, ...)
  restore --store DIR       restart a VM from a committed epoch of a checkpoint store
  eval NAME... [--quick]    run evaluation experiments (solo, npb, sweep, vc-scale, interval, predictor, restore)
  report RESULTS_DIR        write a Markdown + HTML report with SVG charts from eval results
  predictor eval TRACE      compare prediction strategies on a recorded dirty trace
  predictor generate ...    write a synthetic dirty trace
  predictor strategies      list the strategies and their parameters
  store info|verify|decode|encode|gc|compact
                            inspect, check and clean a checkpoint store; decode/encode its files as JSON
  faults store --store DIR  damage copies of a checkpoint store and count what is detected
  doctor [--json]           check this machine's prerequisites and print how to fix what is missing

Options:
  -h, --help      show help (also: vpc <command> --help, vpc help <command>)
  -V, --version   print vpc's version

Run "make demo" from the repository to build the guest image first.`;

const DEMO_USAGE = `Usage: vpc demo [options]

Boots one guest, starts vpc-counter in it, pauses, takes a full checkpoint (RAM copy +
device state), resumes, lets it run, kills QEMU with SIGKILL, restores from the checkpoint,
and checks that the counter continued from the checkpointed value.

Options:
      --image DIR            guest image directory (default: build/images/guest, or $VPC_GUEST_IMAGE)
      --mem MIB              guest RAM in MiB (default 256)
      --run-ms MS            how long the VM runs after the checkpoint before the kill (default 3000)
      --checkpoint-dir DIR   write the checkpoint here and keep it (default: a temporary directory)
      --keep                 keep the temporary checkpoint directory
      --transport T          device-state transport: unix or exec (default unix)
      --boot-timeout-ms MS   boot timeout (default 120000)
      --json                 print one JSON object with the results instead of progress lines
      --log-level LEVEL      JSON log lines on stderr: debug, info, warn or error
  -h, --help                 show this help

Exit status: 0 the counter continued from the checkpoint, 1 it did not or a step failed, 2 usage error.`;

class UsageError extends Error {}

function intOption(name: string, value: string | undefined, min: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min)
    throw new UsageError(`--${name} must be an integer >= ${min}, got ${value}`);
  return n;
}

export function parseDemoArgs(args: readonly string[]): {
  help: boolean;
  json: boolean;
  options: DemoOptions;
} {
  const { values, positionals } = parseArgs({
    args: [...args],
    strict: true,
    allowPositionals: true,
    options: {
      image: { type: "string" },
      mem: { type: "string" },
      "run-ms": { type: "string" },
      "checkpoint-dir": { type: "string" },
      keep: { type: "boolean", default: false },
      transport: { type: "string" },
      "boot-timeout-ms": { type: "string" },
      json: { type: "boolean", default: false },
      "log-level": { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (positionals.length > 0) throw new UsageError(`unexpected argument: ${positionals[0]}`);
  const transport = values.transport;
  if (transport !== undefined && transport !== "unix" && transport !== "exec") {
    throw new UsageError(`--transport must be unix or exec, got ${transport}`);
  }
  const level = values["log-level"];
  if (level !== undefined && !["debug", "info", "warn", "error"].includes(level)) {
    throw new UsageError(`--log-level must be debug, info, warn or error, got ${level}`);
  }
  const mem = intOption("mem", values.mem, 64);
  const runAfterMs = intOption("run-ms", values["run-ms"], 0);
  const bootTimeoutMs = intOption("boot-timeout-ms", values["boot-timeout-ms"], 1);
  const options: DemoOptions = {
    ...(values.image === undefined ? {} : { imageDir: values.image }),
    ...(mem === undefined ? {} : { memMiB: mem }),
    ...(runAfterMs === undefined ? {} : { runAfterMs }),
    ...(values["checkpoint-dir"] === undefined ? {} : { checkpointDir: values["checkpoint-dir"] }),
    keep: values.keep,
    ...(transport === undefined ? {} : { transport }),
    ...(bootTimeoutMs === undefined ? {} : { bootTimeoutMs }),
    ...(level === undefined ? {} : { logger: createJsonLogger({ level: level as LogLevel }) }),
  };
  return { help: values.help, json: values.json, options };
}

/** Formats a finished demo as the summary printed after the progress lines. */
export function formatDemoSummary(r: DemoResult): string {
  const lines = [
    "",
    `result            ${r.ok ? "OK" : `FAILED (${r.failure})`}`,
    `accel             ${r.accel}, ${r.memMiB} MiB guest`,
    `boot              ${(r.bootMs / 1000).toFixed(2)} s`,
    `pause time        ${r.pauseMs.toFixed(1)} ms (stop → cont, checkpoint included)`,
    `device state      ${r.deviceState.bytes} bytes, saved in ${r.deviceState.saveMs.toFixed(1)} ms (${r.deviceState.transport})`,
    `RAM copy          ${r.ramBytes} bytes in ${r.ramCopyMs.toFixed(1)} ms`,
    `restore           ${r.restoreMs.toFixed(1)} ms to SSH (RAM file ${r.restoreTimings.ramRestoreMs.toFixed(1)} ms, ` +
      `QEMU start ${r.restoreTimings.qemuStartMs.toFixed(1)} ms, device state ${r.restoreTimings.guestMs.toFixed(1)} ms, ` +
      `ssh ${r.restoreTimings.sshMs.toFixed(1)} ms)`,
    `counter           before pause ${r.counter.beforePause}, checkpointed ${r.counter.checkpointed}, ` +
      `before kill ${r.counter.beforeKill}, after restore ${r.counter.afterRestore}`,
  ];
  if (r.checkpointDir) lines.push(`checkpoint        ${r.checkpointDir}`);
  return lines.join("\n");
}

export interface MainOptions {
  /**
   * Aborted on the first Ctrl-C when `installSignalCleanup` is graceful: `vpc eval` then stops its
   * cell and cleans up, the testbed daemon stops its VMs.
   */
  readonly signal?: AbortSignal;
}

export async function main(argv: readonly string[], io: CliIo, run: MainOptions = {}): Promise<number> {
  const [command, ...rest] = argv;
  if (command === "help" && rest.length > 0) return main([...rest, "--help"], io, run);
  if (command === undefined || command === "-h" || command === "--help" || command === "help") {
    (command === undefined ? io.stderr : io.stdout)(`${USAGE}\n`);
    return command === undefined ? EXIT_USAGE : EXIT_OK;
  }
  if (command === "--version" || command === "-V") {
    io.stdout(`vpc ${cliVersion()}\n`);
    return EXIT_OK;
  }
  if (command === "store") return runStoreCli(rest, io);
  if (command === "faults") return runFaultsCli(rest, io);
  if (command === "cluster") return runClusterCli(rest, io);
  if (command === "testbed") return runTestbedCli(rest, io, run.signal ? { signal: run.signal } : {});
  if (command === "predictor") return runPredictorCli([...rest], io);
  if (command === "eval") return runEvalCli(rest, io, run.signal ? { signal: run.signal } : {});
  if (command === "report") return runReportCli(rest, io);
  if (command === "checkpoint") return runCheckpointCommand(rest, io);
  if (command === "restore") return runRestoreCommand(rest, io);
  if (command === "doctor") return runDoctorCommand(rest, io);
  if (command !== "demo") {
    const what = command.startsWith("-") ? `unknown option ${command}` : `unknown command "${command}"`;
    io.stderr(`vpc: ${what}\n\n${USAGE}\n`);
    return EXIT_USAGE;
  }
  let parsed: ReturnType<typeof parseDemoArgs>;
  try {
    parsed = parseDemoArgs(rest);
  } catch (e) {
    io.stderr(`vpc demo: ${usageErrorOf(e)}\n\n${DEMO_USAGE}\n`);
    return EXIT_USAGE;
  }
  if (parsed.help) {
    io.stdout(`${DEMO_USAGE}\n`);
    return EXIT_OK;
  }
  const { json, options } = parsed;
  try {
    const result = await runDemo({
      ...options,
      ...(json ? {} : { progress: (line) => io.stdout(`${line}\n`) }),
    });
    io.stdout(json ? `${JSON.stringify(result, null, 2)}\n` : `${formatDemoSummary(result)}\n`);
    return result.ok ? EXIT_OK : EXIT_FAILED;
  } catch (e) {
    const code = ControllerError.isInstance(e) ? ` [${e.code}]` : "";
    io.stderr(`vpc demo: failed${code}: ${e instanceof Error ? e.message : String(e)}\n`);
    if (json)
      io.stdout(`${JSON.stringify({ ok: false, failure: e instanceof Error ? e.message : String(e) })}\n`);
    return EXIT_FAILED;
  }
}

/** The version in this package's package.json (beside `dist/` and `src/` alike). */
function cliVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
    version: string;
  };
  return pkg.version;
}

/**
 * Kills every VM this process started when it is interrupted, then exits. With `graceful`, the
 * first signal only aborts the returned signal, so the command (`vpc eval`) stops and removes what
 * it made (VMs, /dev/shm files, testbeds) itself; a second signal still exits at once.
 */
export function installSignalCleanup(
  options: { readonly graceful?: boolean; readonly notify?: (text: string) => void } = {},
): AbortSignal {
  const interrupted = new AbortController();
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.on(signal, () => {
      if (options.graceful && !interrupted.signal.aborted) {
        options.notify?.(`\nvpc: ${signal}: stopping and cleaning up (send it again to exit at once)\n`);
        // The signal's name is the reason: the testbed daemon logs why it stopped.
        interrupted.abort(signal);
        return;
      }
      reapNow();
      process.exit(128 + (signal === "SIGINT" ? 2 : signal === "SIGTERM" ? 15 : 1));
    });
  }
  return interrupted.signal;
}
