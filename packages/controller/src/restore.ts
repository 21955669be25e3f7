/**
 * Restore of one VM from a committed store epoch: materialise its RAM through the store, start
 * QEMU with `-incoming defer` on it, feed the device state, resume (docs/engines.md "Restore").
 *
 * Epochs of QEMU's own engines hold one full migration stream (RAM included). Those are first
 * loaded into a converter QEMU (x-ignore-shared off), which then writes the RAM file (its shared
 * memory backend) and a device-state-only stream; the VM is then restored from those like any
 * other epoch.
 *
 * With `lazy: true` the RAM is not materialised: QEMU starts on an empty file and the dirty-log
 * agent fills it from the store on demand (lazy-restore.ts).
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { agentLibraryPath, createAgentDir } from "@vpc/dirty-log";
import { type CheckpointStore, type NewestEpoch, type SkippedEpoch, StoreError } from "@vpc/storage";
import { QmpClient } from "qemu-qmp-client";
import { resolveAccel } from "./accel.js";
import { decodeEnvelope } from "./engines/envelope.js";
import { CheckpointError } from "./errors.js";
import { type GuestImage, loadGuestImage } from "./guest-image.js";
import type { VmConfig, VmConfigInput } from "./internal/config.js";
import { saveDeviceStateTo } from "./internal/device-state.js";
import { freePort } from "./internal/ports.js";
import { buildKernelCmdline, buildQemuArgs, deriveMac } from "./internal/qemu-args.js";
import { QemuProcess } from "./internal/qemu-process.js";
import { trackDir, untrackDir } from "./internal/reaper.js";
import { type LazyRam, type LazyRestoreStats, prepareLazyRam } from "./lazy-restore.js";
import { defaultLogger, type Logger } from "./logger.js";
import { kvmProbeBoot, Vm } from "./vm.js";

export interface RestoreVmOptions {
  readonly store: CheckpointStore;
  readonly vmId: string;
  /** Default: the newest committed epoch that includes `vmId`. */
  readonly epoch?: number;
  readonly image?: GuestImage | string;
  /** Host-side settings for the new QEMU (e.g. the dirty-log agent's preload and socket). */
  readonly overrides?: Pick<VmConfigInput, "dataNics" | "env" | "preload">;
  readonly shmRoot?: string;
  readonly runRoot?: string;
  readonly qemuBinary?: string;
  readonly logger?: Logger;
  /**
   * Lazy restore (opt-in; eager stays the default until proven): QEMU starts on an empty RAM file
   * and the dirty-log agent fills each page from its verified store block on first touch, a
   * background loader the rest (`RestoredVm.lazy`). Uses the agent of `overrides` if it names one,
   * else preloads its own. Epochs it cannot serve (QEMU's own engines' full streams, compressed
   * stores) are restored eagerly, and `lazyFallback` says why.
   */
  readonly lazy?: boolean;
}

export interface RestoredVm {
  readonly vm: Vm;
  readonly epoch: number;
  /** The engine that wrote the epoch. */
  readonly engine: string;
  readonly timings: {
    /** Materialising RAM from the store chain (or converting QEMU's full stream). */
    readonly ramMs: number;
    /** `Vm.restore`: QEMU start, device state load, `cont`, SSH. */
    readonly vmMs: number;
    readonly totalMs: number;
    /** Restore request until QEMU was running the guest again (`cont` done). */
    readonly runningMs: number;
  };
  /** Lazy restores: resolves once every page is in (see `LazyRam.loaded`); the VM runs meanwhile. */
  readonly lazy?: { readonly loaded: Promise<LazyRestoreStats> };
  /** Why a lazy restore that was asked for ran eagerly. */
  readonly lazyFallback?: string;
  /**
   * Without an explicit epoch: newer epochs passed over, newest first, each with the file that made
   * it unusable and why (a garbage global manifest, parts never committed). Empty when the epoch
   * restored is the newest one written.
   */
  readonly skipped: readonly SkippedEpoch[];
}

/** Restarts VM `vmId` from a committed epoch of `store`. The VM it came from must be gone. */
export async function restoreVm(options: RestoreVmOptions): Promise<RestoredVm> {
  const t0 = performance.now();
  const { store, vmId } = options;
  const { epoch, skipped } =
    options.epoch === undefined ? await newestEpochOf(store, vmId) : { epoch: options.epoch, skipped: [] };
  const logger = options.logger ?? defaultLogger();
  for (const s of skipped) {
    logger.log("warn", "vm.restore-skipped-epoch", {
      vm: vmId,
      epoch: s.epoch,
      path: s.path,
      reason: s.reason,
    });
  }
  const envelope = decodeEnvelope(await store.readDeviceState(vmId, epoch));
  const scratch = await mkdtemp(join(options.shmRoot ?? "/dev/shm", `vpc-restore-${vmId}-`));
  trackDir(scratch);
  let lazy: LazyRam | undefined;
  let lazyFallback: string | undefined;
  let overrides = options.overrides;
  let ownAgentDir: { remove(): Promise<void> } | undefined;
  try {
    const ramFile = join(scratch, "ram");
    const deviceStateFile = join(scratch, "device-state");
    if (options.lazy && envelope.ramIncluded) {
      lazyFallback = `epoch ${epoch} of ${vmId} is a full QEMU stream (engine ${envelope.meta.engine}), not a store RAM chain`;
    } else if (options.lazy) {
      let agentSocket = overrides?.env?.VPC_DIRTY_LOG_SOCKET;
      if (agentSocket === undefined) {
        const dir = await createAgentDir();
        ownAgentDir = dir;
        agentSocket = dir.socketPath;
        overrides = {
          ...overrides,
          preload: agentLibraryPath(),
          env: { ...overrides?.env, VPC_DIRTY_LOG_SOCKET: agentSocket },
        };
      }
      try {
        lazy = await prepareLazyRam({ store, vmId, epoch, agentSocket, scratch, logger });
      } catch (e) {
        if (!StoreError.isInstance(e) || e.code !== "ARGUMENT") throw e;
        lazyFallback = e.message;
      }
    }
    if (lazyFallback !== undefined)
      logger.log("warn", "vm.lazy-fallback", { vm: vmId, epoch, reason: lazyFallback });
    if (lazy) {
      await writeFile(deviceStateFile, envelope.stream);
    } else if (envelope.ramIncluded) {
      const streamFile = join(scratch, "stream");
      await writeFile(streamFile, envelope.stream);
      await convertFullStream(envelope.meta.vm, streamFile, ramFile, deviceStateFile, options);
      await rm(streamFile, { force: true });
    } else {
      await store.restoreRam(vmId, epoch, ramFile);
      await writeFile(deviceStateFile, envelope.stream);
    }
    const tRam = performance.now();
    const vm = await Vm.restore({
      ...(lazy ? { lazyRam: lazy.fill } : { ramFile }),
      deviceStateFile,
      config: envelope.meta.vm,
      ...(options.image === undefined ? {} : { image: options.image }),
      ...(overrides === undefined ? {} : { overrides }),
      ...(options.shmRoot === undefined ? {} : { shmRoot: options.shmRoot }),
      ...(options.runRoot === undefined ? {} : { runRoot: options.runRoot }),
      ...(options.qemuBinary === undefined ? {} : { qemuBinary: options.qemuBinary }),
      ...(options.logger === undefined ? {} : { logger: options.logger }),
    }).catch(async (e: unknown) => {
      // A block that failed verification kills QEMU mid-restore: name it, not the exit it caused.
      throw (await lazy?.verificationFailure(2000)) ?? e;
    });
    const tEnd = performance.now();
    const runningMs = tRam - t0 + vm.timings.totalMs - vm.timings.sshMs;
    let loaded: Promise<LazyRestoreStats> | undefined;
    if (lazy) {
      const agentDir = ownAgentDir;
      ownAgentDir = undefined;
      loaded = lazy.loaded().finally(() => agentDir?.remove());
      // The caller may never wait for it; a failure has been logged and has ended the VM.
      loaded.catch(() => undefined);
    }
    return {
      vm,
      epoch,
      engine: envelope.meta.engine,
      timings: { ramMs: tRam - t0, vmMs: tEnd - tRam, totalMs: tEnd - t0, runningMs },
      ...(loaded === undefined ? {} : { lazy: { loaded } }),
      ...(lazyFallback === undefined ? {} : { lazyFallback }),
      skipped,
    };
  } finally {
    await ownAgentDir?.remove();
    await rm(scratch, { recursive: true, force: true });
    untrackDir(scratch);
  }
}

async function newestEpochOf(store: CheckpointStore, vmId: string): Promise<NewestEpoch> {
  try {
    return await store.newestEpoch(vmId);
  } catch (e) {
    if (!StoreError.isInstance(e) || e.code !== "NOT_FOUND") throw e;
    throw new CheckpointError("restore", e.message, { vmId, cause: e });
  }
}

/**
 * Loads a full QEMU stream into a paused converter QEMU whose memory backend is `ramFile`, then
 * saves its device state alone (x-ignore-shared) to `deviceStateFile` and quits.
 */
async function convertFullStream(
  config: VmConfig,
  streamFile: string,
  ramFile: string,
  deviceStateFile: string,
  options: RestoreVmOptions,
): Promise<void> {
  const image = typeof options.image === "object" ? options.image : await loadGuestImage(options.image);
  const probe = {
    image,
    qemuBinary: options.qemuBinary ?? "qemu-system-x86_64",
    logger: options.logger ?? defaultLogger(),
  };
  const runDir = await mkdtemp(join(options.runRoot ?? tmpdir(), `vpc-convert-${config.name}-`));
  trackDir(runDir);
  let proc: QemuProcess | undefined;
  let qmp: QmpClient | undefined;
  try {
    const qmpSocket = join(runDir, "qmp.sock");
    const args = buildQemuArgs({
      accel: await resolveAccel(config.accel, { ...probe, probeBoot: kvmProbeBoot(probe) }),
      cpus: config.cpus,
      memMiB: config.memMiB,
      ramPath: ramFile,
      kernel: image.kernel,
      initrd: image.initrd,
      append: buildKernelCmdline(config.guest),
      qmpSocket,
      serialLog: join(runDir, "serial.log"),
      sshPort: await freePort(),
      mgmtMac: deriveMac(config.name, 0),
      // The converter never runs the guest; data NICs would try to reach a switch.
      dataNics: [],
      incoming: true,
      extraArgs: config.extraQemuArgs,
    });
    proc = await QemuProcess.spawn(options.qemuBinary ?? "qemu-system-x86_64", args, process.env);
    const deadline = Date.now() + 60_000;
    for (;;) {
      try {
        qmp = await QmpClient.connect(
          { path: qmpSocket },
          { connectTimeoutMs: 2000, commandTimeoutMs: 120_000 },
        );
        break;
      } catch (e) {
        if (!proc.alive || Date.now() > deadline) throw e;
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    await qmp.migrateIncoming(`exec:cat '${streamFile.replaceAll("'", "")}'`);
    for (;;) {
      if (!proc.alive) throw new Error(`converter QEMU exited: ${proc.outputTail()}`);
      if (Date.now() > deadline) throw new Error("timed out loading the QEMU stream");
      if ((await qmp.queryStatus()).status !== "inmigrate") break;
      await new Promise((r) => setTimeout(r, 5));
    }
    await qmp.migrateSetCapabilities([{ capability: "x-ignore-shared", state: true }]);
    await saveDeviceStateTo(qmp, deviceStateFile, {
      transport: "unix",
      socketPath: join(runDir, "migrate.sock"),
      timeoutMs: 60_000,
    });
  } catch (cause) {
    throw new CheckpointError("convert-qemu-stream", cause instanceof Error ? cause.message : String(cause), {
      vmId: config.name,
      path: streamFile,
      cause,
    });
  } finally {
    await qmp?.close().catch(() => undefined);
    await proc?.terminate("SIGKILL");
    await rm(runDir, { recursive: true, force: true });
    untrackDir(runDir);
  }
}
