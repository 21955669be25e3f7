/**
 * The single-VM checkpoint demo: boot, run vpc-counter, pause, full checkpoint, resume, SIGKILL,
 * restore, and check that the counter continued from the checkpointed value.
 */
import { rmSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type DeviceStateTransport,
  findCounterInRam,
  type Logger,
  loadGuestImage,
  readCounter,
  restoreOptionsFor,
  type StartTimings,
  startCounter,
  takeFullCheckpoint,
  Vm,
} from "@vpc/controller";

export interface DemoOptions {
  readonly imageDir?: string;
  readonly memMiB?: number;
  /** How long the VM runs after the checkpoint before it is killed. */
  readonly runAfterMs?: number;
  /** Where the checkpoint goes; default a temporary directory. */
  readonly checkpointDir?: string;
  /** Keep the temporary checkpoint directory afterwards (a given `checkpointDir` is always kept). */
  readonly keep?: boolean;
  readonly transport?: DeviceStateTransport;
  readonly bootTimeoutMs?: number;
  readonly logger?: Logger;
  /** Called with one human-readable line per step. */
  readonly progress?: (line: string) => void;
}

export interface DemoResult {
  readonly ok: boolean;
  /** Why the check failed, when `ok` is false. */
  readonly failure: string | undefined;
  readonly accel: string;
  readonly memMiB: number;
  readonly bootMs: number;
  readonly counter: {
    readonly beforePause: string;
    /** Exact value in the checkpoint's RAM image. */
    readonly checkpointed: string;
    readonly beforeKill: string;
    readonly afterRestore: string;
  };
  /** QMP stop sent → cont acknowledged, including device-state save and RAM copy. */
  readonly pauseMs: number;
  readonly deviceState: {
    readonly bytes: number;
    readonly saveMs: number;
    readonly transport: DeviceStateTransport;
  };
  readonly ramCopyMs: number;
  readonly ramBytes: number;
  /** From starting the new QEMU (RAM file copy included) to the guest answering over SSH. */
  readonly restoreMs: number;
  readonly restoreTimings: StartTimings;
  readonly checkpointDir: string | undefined;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function runDemo(options: DemoOptions = {}): Promise<DemoResult> {
  const say = options.progress ?? (() => {});
  const image = await loadGuestImage(options.imageDir);
  const ownDir = options.checkpointDir === undefined;
  const dir = options.checkpointDir ?? (await mkdtemp(join(tmpdir(), "vpc-demo-")));
  const common = { image, ...(options.logger ? { logger: options.logger } : {}) };
  let vm: Vm | undefined;
  let restored: Vm | undefined;
  // A 256 MiB RAM copy must not outlive an interrupted demo (Ctrl-C ends in process.exit).
  const removeOnExit = () => rmSync(dir, { recursive: true, force: true });
  if (ownDir && !options.keep) process.once("exit", removeOnExit);
  try {
    say(`booting a ${options.memMiB ?? 256} MiB guest (${image.kernelRelease})...`);
    vm = await Vm.start({
      name: "demo",
      ...common,
      ...(options.memMiB === undefined ? {} : { memMiB: options.memMiB }),
      ...(options.bootTimeoutMs === undefined ? {} : { bootTimeoutMs: options.bootTimeoutMs }),
    });
    const bootMs = vm.timings.totalMs;
    say(`booted in ${sec(bootMs)} (accel ${vm.accel}, ssh on 127.0.0.1:${vm.sshPort})`);

    const started = await startCounter(vm);
    await sleep(1000);
    const beforePause = (await readCounter(vm)).value;
    say(`vpc-counter running in the guest: ${beforePause}`);

    const t0 = performance.now();
    await vm.pause();
    const cp = await takeFullCheckpoint(vm, dir, options.transport ? { transport: options.transport } : {});
    await vm.resume();
    const pauseMs = performance.now() - t0;
    say(
      `checkpoint: paused ${ms(pauseMs)}; device state ${kb(cp.deviceStateBytes)} saved in ${ms(cp.timings.deviceStateMs)} ` +
        `(${cp.transport}); RAM ${mb(cp.ramBytes)} copied in ${ms(cp.timings.ramCopyMs)}`,
    );
    const checkpointed = await findCounterInRam(cp.ramFile, started.nonce);
    if (checkpointed === undefined)
      throw new Error("the counter record is not in the checkpoint's RAM image");
    say(`counter in the checkpoint image: ${checkpointed}`);

    await sleep(options.runAfterMs ?? 3000);
    const beforeKill = (await readCounter(vm)).value;
    say(`counter before the kill: ${beforeKill}; sending SIGKILL to QEMU (pid ${vm.pid})`);
    await vm.kill();
    vm = undefined;

    const r0 = performance.now();
    restored = await Vm.restore(restoreOptionsFor(cp, common));
    const restoreMs = performance.now() - r0;
    const after = await readCounter(restored);
    say(
      `restored in ${ms(restoreMs)} (RAM file ${ms(restored.timings.ramRestoreMs)}, device state ${ms(restored.timings.guestMs)})`,
    );
    say(`counter after restore: ${after.value}`);

    let failure: string | undefined;
    if (after.nonce !== started.nonce) failure = "a different vpc-counter run answered after restore";
    else if (after.value < checkpointed)
      failure = `counter went back: ${after.value} < checkpointed ${checkpointed}`;
    else if (after.value >= beforeKill)
      failure = `counter did not go back to the checkpoint: ${after.value} >= ${beforeKill}`;
    say(
      failure
        ? `FAILED: ${failure}`
        : `OK: the counter continued from ${checkpointed} (it had reached ${beforeKill} before the kill)`,
    );
    return {
      ok: failure === undefined,
      failure,
      accel: restored.accel,
      memMiB: restored.config.memMiB,
      bootMs,
      counter: {
        beforePause: beforePause.toString(),
        checkpointed: checkpointed.toString(),
        beforeKill: beforeKill.toString(),
        afterRestore: after.value.toString(),
      },
      pauseMs,
      deviceState: { bytes: cp.deviceStateBytes, saveMs: cp.timings.deviceStateMs, transport: cp.transport },
      ramCopyMs: cp.timings.ramCopyMs,
      ramBytes: cp.ramBytes,
      restoreMs,
      restoreTimings: restored.timings,
      checkpointDir: ownDir && !options.keep ? undefined : dir,
    };
  } finally {
    await vm?.shutdown();
    await restored?.shutdown();
    // A directory the caller named is theirs to keep; our temporary one goes unless asked.
    if (ownDir && !options.keep) {
      process.off("exit", removeOnExit);
      await rm(dir, { recursive: true, force: true });
    }
  }
}

const sec = (x: number) => `${(x / 1000).toFixed(1)} s`;
const ms = (x: number) => `${x.toFixed(1)} ms`;
const kb = (x: number) => `${(x / 1024).toFixed(0)} KiB`;
const mb = (x: number) => `${(x / 1024 / 1024).toFixed(0)} MiB`;
