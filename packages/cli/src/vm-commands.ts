/**
 * `vpc checkpoint` and `vpc restore`: one VM, one engine, a checkpoint store on disk.
 *
 * `checkpoint` boots a guest with the dirty-log agent, starts a workload in it (by default
 * vpc-memcheck, which verifies its own memory), takes COUNT checkpoints every INTERVAL with the
 * chosen engine into the store, prints one line per checkpoint and a summary, and shuts the VM down.
 * `restore` restarts the VM from a committed epoch of that store, optionally runs a command in the
 * restored guest, and shuts it down again (or holds it until Ctrl-C).
 */
import { parseArgs } from "node:util";
import {
  CheckpointLoop,
  type CheckpointRecord,
  ControllerError,
  createEngine,
  createJsonLogger,
  type Distribution,
  type EngineSpec,
  type Logger,
  type LogLevel,
  parseEngineSpec,
  restoreVm,
  startVmWithAgent,
} from "@vpc/controller";
import { CheckpointStore, type SkippedEpoch } from "@vpc/storage";
import type { CliIo } from "./cli-common.js";
import { usageErrorOf } from "./cli-common.js";

const EXIT_OK = 0;
const EXIT_FAILED = 1;
const EXIT_USAGE = 2;

const CHECKPOINT_USAGE = `Usage: vpc checkpoint --store DIR [options]

Boots one guest with the dirty-log agent, starts a workload in it, and takes --count checkpoints
every --interval-ms with --engine into the checkpoint store DIR (created if missing). Prints one line
per checkpoint (pause time, solo VM downtime, pages) and a summary, then shuts the VM down.

Options:
      --store DIR          checkpoint store directory (required)
      --engine SPEC        stop-copy | cow | vpc(STRATEGY) | precopy | qemu-snapshot | qemu-stop (default vpc)
      --interval-ms MS     time between checkpoint starts (default 1000)
      --count N            checkpoints to take (default 5)
      --name NAME          VM name, also its id in the store (default vm0)
      --mem MIB            guest RAM in MiB (default 256)
      --workload CMD       command started in the guest before the first checkpoint
                           (default: "vpc-memcheck -m 16", a program that verifies its own memory)
      --metrics FILE       append every checkpoint record to FILE as JSON lines
      --image DIR          guest image directory (default build/images/guest)
      --json               print the records and summary as one JSON object
      --log-level LEVEL    JSON log lines on stderr: debug, info, warn or error
  -h, --help               show this help

Exit status: 0 every checkpoint committed, 1 a checkpoint or step failed, 2 usage error.`;

const RESTORE_USAGE = `Usage: vpc restore --store DIR [options]

Restarts a VM from a committed epoch of the checkpoint store DIR (RAM materialised from the epoch
chain, device state fed to QEMU with -incoming defer), prints the restore time, optionally runs a
command in the restored guest, then shuts it down (or keeps it running until Ctrl-C with --hold).

Options:
      --store DIR          checkpoint store directory (required)
      --vm ID              VM id in the store (default vm0)
      --epoch E            committed epoch to restore (default: the newest one holding the VM)
      --exec CMD           run CMD in the restored guest over SSH and print its output
      --hold               keep the VM running until interrupted
      --lazy               lazy restore: start QEMU on empty RAM, fill pages from the store on first
                           touch and in the background (verified); prints the loader's counters
      --image DIR          guest image directory (default build/images/guest)
      --json               print the result as one JSON object
      --log-level LEVEL    JSON log lines on stderr: debug, info, warn or error
  -h, --help               show this help

Exit status: 0 restored (and --exec exited 0), 1 failure, 2 usage error.`;

class UsageError extends Error {}

function intOption(name: string, value: string | undefined, min: number, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min)
    throw new UsageError(`--${name} must be an integer >= ${min}, got ${value}`);
  return n;
}

function loggerFor(level: string | undefined): Logger | undefined {
  if (level === undefined) return undefined;
  if (!["debug", "info", "warn", "error"].includes(level)) {
    throw new UsageError(`--log-level must be debug, info, warn or error, got ${level}`);
  }
  return createJsonLogger({ level: level as LogLevel });
}

export interface CheckpointArgs {
  readonly help: boolean;
  readonly json: boolean;
  readonly store: string;
  /** `--engine`, parsed. */
  readonly engine: EngineSpec;
  readonly intervalMs: number;
  readonly count: number;
  readonly name: string;
  readonly memMiB: number;
  readonly workload: string;
  readonly metricsFile?: string;
  readonly image?: string;
  readonly logger?: Logger;
}

/** Options both commands take, parsed and checked the same way. */
const SHARED_OPTIONS = {
  store: { type: "string" },
  image: { type: "string" },
  json: { type: "boolean", default: false },
  "log-level": { type: "string" },
  help: { type: "boolean", short: "h", default: false },
} as const;

export function parseCheckpointArgs(args: readonly string[]): CheckpointArgs {
  const { values, positionals } = parseArgs({
    args: [...args],
    strict: true,
    allowPositionals: true,
    options: {
      engine: { type: "string", default: "vpc" },
      "interval-ms": { type: "string" },
      count: { type: "string" },
      name: { type: "string", default: "vm0" },
      mem: { type: "string" },
      workload: { type: "string", default: "vpc-memcheck -m 16" },
      metrics: { type: "string" },
      ...SHARED_OPTIONS,
    },
  });
  if (positionals.length > 0) throw new UsageError(`unexpected argument: ${positionals[0]}`);
  if (values.help) return { help: true } as CheckpointArgs;
  if (values.store === undefined) throw new UsageError("--store DIR is required");
  let engine: EngineSpec;
  try {
    engine = parseEngineSpec(values.engine);
  } catch (e) {
    throw new UsageError(`--engine: ${e instanceof Error ? e.message : String(e)}`);
  }
  const logger = loggerFor(values["log-level"]);
  return {
    help: false,
    json: values.json,
    store: values.store,
    engine,
    intervalMs: intOption("interval-ms", values["interval-ms"], 100, 1000),
    count: intOption("count", values.count, 1, 5),
    name: values.name,
    memMiB: intOption("mem", values.mem, 64, 256),
    workload: values.workload,
    ...(values.metrics === undefined ? {} : { metricsFile: values.metrics }),
    ...(values.image === undefined ? {} : { image: values.image }),
    ...(logger === undefined ? {} : { logger }),
  };
}

export interface RestoreArgs {
  readonly help: boolean;
  readonly json: boolean;
  readonly store: string;
  readonly vmId: string;
  readonly epoch?: number;
  readonly exec?: string;
  readonly hold: boolean;
  readonly lazy: boolean;
  readonly image?: string;
  readonly logger?: Logger;
}

export function parseRestoreArgs(args: readonly string[]): RestoreArgs {
  const { values, positionals } = parseArgs({
    args: [...args],
    strict: true,
    allowPositionals: true,
    options: {
      vm: { type: "string", default: "vm0" },
      epoch: { type: "string" },
      exec: { type: "string" },
      hold: { type: "boolean", default: false },
      lazy: { type: "boolean", default: false },
      ...SHARED_OPTIONS,
    },
  });
  if (positionals.length > 0) throw new UsageError(`unexpected argument: ${positionals[0]}`);
  if (values.help) return { help: true } as RestoreArgs;
  if (values.store === undefined) throw new UsageError("--store DIR is required");
  const logger = loggerFor(values["log-level"]);
  return {
    help: false,
    json: values.json,
    store: values.store,
    vmId: values.vm,
    ...(values.epoch === undefined ? {} : { epoch: intOption("epoch", values.epoch, 0, 0) }),
    ...(values.exec === undefined ? {} : { exec: values.exec }),
    hold: values.hold,
    lazy: values.lazy,
    ...(values.image === undefined ? {} : { image: values.image }),
    ...(logger === undefined ? {} : { logger }),
  };
}

/** One progress line per checkpoint record. */
function formatCheckpointRecord(r: CheckpointRecord): string {
  if (!r.ok) return `epoch ${r.epoch}  FAILED at ${r.stage}: ${r.error.message}`;
  return (
    `epoch ${r.epoch}  pause ${r.pauseMs.toFixed(1)} ms  solo downtime ${r.soloDowntimeMs.toFixed(1)} ms  ` +
    `dirty ${r.pagesDirty}  copied in pause ${r.pagesCopiedInPause}  COW ${r.pagesCowCopied}  ` +
    `durable after ${r.durableMs.toFixed(0)} ms  ${r.checkpointBytes} B`
  );
}

function fail(io: CliIo, command: string, e: unknown, json: boolean): number {
  const code = ControllerError.isInstance(e) ? ` [${e.code}]` : "";
  const message = e instanceof Error ? e.message : String(e);
  io.stderr(`vpc ${command}: failed${code}: ${message}\n`);
  if (json) io.stdout(`${JSON.stringify({ ok: false, failure: message })}\n`);
  return EXIT_FAILED;
}

export async function runCheckpointCommand(argv: readonly string[], io: CliIo): Promise<number> {
  let a: CheckpointArgs;
  try {
    a = parseCheckpointArgs(argv);
  } catch (e) {
    io.stderr(`vpc checkpoint: ${usageErrorOf(e)}\n\n${CHECKPOINT_USAGE}\n`);
    return EXIT_USAGE;
  }
  if (a.help) {
    io.stdout(`${CHECKPOINT_USAGE}\n`);
    return EXIT_OK;
  }
  const say = (line: string) => {
    if (!a.json) io.stdout(`${line}\n`);
  };
  try {
    const store = await CheckpointStore.open(a.store, { create: true });
    try {
      say(`booting ${a.name} (${a.memMiB} MiB) with the dirty-log agent ...`);
      const bootStart = performance.now();
      const avm = await startVmWithAgent({
        name: a.name,
        memMiB: a.memMiB,
        ...(a.image === undefined ? {} : { image: a.image }),
        ...(a.logger === undefined ? {} : { logger: a.logger }),
      });
      say(`booted in ${((performance.now() - bootStart) / 1000).toFixed(1)} s`);
      try {
        say(`starting workload: ${a.workload}`);
        await avm.vm.run(`${a.workload} >/dev/null 2>/run/vpc-workload.err </dev/null &`);
        const engine = createEngine(a.engine, {
          vm: avm.vm,
          store,
          agent: avm.agent,
          ...(a.logger === undefined ? {} : { logger: a.logger }),
        });
        try {
          say(`taking ${a.count} checkpoints with ${engine.spec} every ${a.intervalMs} ms into ${a.store}`);
          const loop = new CheckpointLoop({
            vm: avm.vm,
            engine,
            intervalMs: a.intervalMs,
            maxCheckpoints: a.count,
            ...(a.metricsFile === undefined ? {} : { metricsFile: a.metricsFile }),
            onRecord: (r) => say(formatCheckpointRecord(r)),
          });
          const result = await loop.start().finished();
          const failed = result.records.filter((r) => !r.ok).length;
          if (a.json) {
            io.stdout(`${JSON.stringify({ ok: failed === 0, ...result }, null, 2)}\n`);
          } else {
            const s = result.summary;
            say("");
            say(`checkpoints       ${result.records.length - failed} committed, ${failed} failed`);
            say(
              `last committed    epoch ${result.lastCommitted ?? "none"} (restore: vpc restore --store ${a.store} --vm ${a.name})`,
            );
            const ms = (d: Distribution) =>
              d.median === null || d.p95 === null
                ? "n/a (no incremental checkpoint)"
                : `median ${d.median.toFixed(1)} ms, p95 ${d.p95.toFixed(1)} ms over ${d.n}`;
            say(`pause time        ${ms(s.pauseMs)} (incremental checkpoints)`);
            say(`solo VM downtime  ${ms(s.soloDowntimeMs)}`);
            say(`metrics           ${a.metricsFile ?? "add --metrics FILE or --json for every field"}`);
          }
          return failed === 0 ? EXIT_OK : EXIT_FAILED;
        } finally {
          await engine.close();
        }
      } finally {
        await avm.close();
      }
    } finally {
      await store.close();
    }
  } catch (e) {
    return fail(io, "checkpoint", e, a.json);
  }
}

export async function runRestoreCommand(argv: readonly string[], io: CliIo): Promise<number> {
  let a: RestoreArgs;
  try {
    a = parseRestoreArgs(argv);
  } catch (e) {
    io.stderr(`vpc restore: ${usageErrorOf(e)}\n\n${RESTORE_USAGE}\n`);
    return EXIT_USAGE;
  }
  if (a.help) {
    io.stdout(`${RESTORE_USAGE}\n`);
    return EXIT_OK;
  }
  try {
    // Read-only: restoring never changes the store, and may run beside a writer.
    const store = await CheckpointStore.open(a.store, { readOnly: true });
    try {
      const restored = await restoreVm({
        store,
        vmId: a.vmId,
        ...(a.epoch === undefined ? {} : { epoch: a.epoch }),
        ...(a.image === undefined ? {} : { image: a.image }),
        ...(a.logger === undefined ? {} : { logger: a.logger }),
        lazy: a.lazy,
      });
      try {
        let exec: { stdout: string; stderr: string; code: number | null } | undefined;
        if (a.exec !== undefined) {
          const r = await restored.vm.exec(a.exec);
          exec = { stdout: r.stdout, stderr: r.stderr, code: r.exitCode };
        }
        // A lazy restore reports its loader once every page is in (a corrupt block rejects here).
        const lazy = await restored.lazy?.loaded;
        const result = {
          ok: exec === undefined || exec.code === 0,
          vmId: a.vmId,
          epoch: restored.epoch,
          engine: restored.engine,
          restoreMs: restored.timings.totalMs,
          timings: restored.timings,
          ...(lazy === undefined ? {} : { lazy }),
          ...(restored.lazyFallback === undefined ? {} : { lazyFallback: restored.lazyFallback }),
          ...(exec === undefined ? {} : { exec }),
          skipped: restored.skipped,
        };
        // Said even with --json: restoring an older epoch than the newest one taken is never silent.
        io.stderr(formatSkippedEpochs(restored.epoch, restored.skipped));
        if (a.json) {
          io.stdout(`${JSON.stringify(result, null, 2)}\n`);
        } else {
          io.stdout(
            `restored ${a.vmId} from epoch ${restored.epoch} (${restored.engine}) in ${restored.timings.totalMs.toFixed(0)} ms ` +
              `(RAM ${restored.timings.ramMs.toFixed(0)} ms, QEMU + device state + SSH ${restored.timings.vmMs.toFixed(0)} ms; ` +
              `running after ${restored.timings.runningMs.toFixed(0)} ms)\n`,
          );
          if (lazy !== undefined) {
            io.stdout(
              `lazy: map ${lazy.mapMs.toFixed(0)} ms, all pages in after ${lazy.loadMs.toFixed(0)} ms; ` +
                `${lazy.faults} MISSING faults (${lazy.zeroFaults} zero) stalled ${lazy.faultStallMs.toFixed(1)} ms ` +
                `(max ${lazy.faultMaxMs.toFixed(2)} ms); pages by fault ${lazy.pagesByFault}, by loader ${lazy.pagesByLoader}\n`,
            );
          }
          if (restored.lazyFallback !== undefined) io.stdout(`restored eagerly: ${restored.lazyFallback}\n`);
          if (exec !== undefined) {
            io.stdout(exec.stdout);
            io.stderr(exec.stderr);
          }
        }
        if (a.hold) {
          io.stdout("holding the VM; press Ctrl-C to shut it down\n");
          await new Promise<void>((resolve) => {
            process.once("SIGINT", resolve);
            process.once("SIGTERM", resolve);
          });
        }
        return result.ok ? EXIT_OK : EXIT_FAILED;
      } finally {
        await restored.vm.shutdown();
      }
    } finally {
      await store.close();
    }
  } catch (e) {
    return fail(io, "restore", e, a.json);
  }
}

/** One warning line per newer epoch a restore passed over: which epoch, the file, why. */
export function formatSkippedEpochs(restored: number, skipped: readonly SkippedEpoch[]): string {
  return skipped
    .map((s) => `vpc restore: warning: skipped epoch ${s.epoch}, restoring epoch ${restored}: ${s.reason}\n`)
    .join("");
}
