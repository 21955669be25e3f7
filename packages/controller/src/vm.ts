/**
 * One QEMU virtual machine: start (boot to the guest's ready marker) or restore (from a RAM
 * file plus device state), run commands over SSH, pause and resume through QMP, save device
 * state while paused, and always clean up its process, sockets and /dev/shm files.
 */
import { copyFile, mkdtemp, open, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { QmpClient } from "qemu-qmp-client";
import { resolveAccel } from "./accel.js";
import {
  BootError,
  CheckpointError,
  ControllerError,
  GuestCommandError,
  QemuExitedError,
  VmStateError,
} from "./errors.js";
import { type GuestImage, loadGuestImage } from "./guest-image.js";
import { type AccelOption, type VmConfig, type VmConfigInput, validateVmConfig } from "./internal/config.js";
import { DeviceStateSink, type DeviceStateTransport, saveDeviceStateTo } from "./internal/device-state.js";
import { freePort } from "./internal/ports.js";
import { type Accel, buildKernelCmdline, buildQemuArgs, deriveMac } from "./internal/qemu-args.js";
import { type ExitInfo, QemuProcess } from "./internal/qemu-process.js";
import { trackDir, untrackDir } from "./internal/reaper.js";
import { SerialScanner } from "./internal/serial-scanner.js";
import { type ExecResult, GuestSsh } from "./internal/ssh.js";
import { defaultLogger, type Logger } from "./logger.js";

export type { DeviceStateTransport } from "./internal/device-state.js";
export type { ExecResult } from "./internal/ssh.js";

export interface VmOptions extends VmConfigInput {
  /** A loaded image, or its directory; default: `defaultGuestImageDir()`. */
  readonly image?: GuestImage | string;
  readonly qemuBinary?: string;
  /** Parent of the VM's private RAM directory (default /dev/shm). */
  readonly shmRoot?: string;
  /** Parent of the VM's private runtime directory (QMP socket, serial log; default os.tmpdir()). */
  readonly runRoot?: string;
  readonly logger?: Logger;
}

export interface RestoreOptions extends Omit<VmOptions, keyof VmConfigInput> {
  /** RAM file to start from (copied to the new VM's mem-path first); omitted with `lazyRam`. */
  readonly ramFile?: string;
  /**
   * Lazy restore instead of `ramFile`: QEMU starts on an empty, sparse RAM file, and this runs once
   * QEMU is up (`qemuPid`), before the device state loads; it must make every page of `ramPath`
   * read as its committed content from then on (the dirty-log agent's `lazyLoad` fills pages on
   * their first touch). Counted in `timings.ramRestoreMs`.
   */
  readonly lazyRam?: (ramPath: string, qemuPid: number) => Promise<void>;
  /** Device state saved by `saveDeviceState`. */
  readonly deviceStateFile: string;
  /** The configuration of the VM the state came from (`vm.config`); hardware must match. */
  readonly config: VmConfig;
  /** Replace settings that are host-side only (data NIC sockets, env, preload). */
  readonly overrides?: Pick<VmConfigInput, "dataNics" | "env" | "preload">;
}

export type VmState = "running" | "paused" | "exited";

export interface StartTimings {
  /** Copying the RAM file into place (restore only). */
  readonly ramRestoreMs: number;
  /** Spawn until QMP is connected. */
  readonly qemuStartMs: number;
  /** Boot: QMP connected until the ready marker; restore: `migrate-incoming` until done. */
  readonly guestMs: number;
  /** `cont` round trip (restore only). */
  readonly contMs: number;
  /** Until SSH works. */
  readonly sshMs: number;
  readonly totalMs: number;
}

export interface DeviceStateSave {
  readonly path: string;
  readonly bytes: number;
  readonly ms: number;
  readonly transport: DeviceStateTransport;
}

const QMP_CONNECT_TIMEOUT_MS = 30_000;
const QMP_COMMAND_TIMEOUT_MS = 60_000;
const SERIAL_POLL_MS = 50;

export class Vm {
  readonly name: string;
  readonly config: VmConfig;
  readonly image: GuestImage;
  readonly accel: Accel;
  /** Guest RAM (the memory-backend file); readable by engines and the dirty-log agent. */
  readonly ramPath: string;
  readonly runDir: string;
  readonly shmDir: string;
  readonly qmpSocket: string;
  readonly serialLog: string;
  readonly sshPort: number;
  readonly timings: StartTimings;
  #stateValue: VmState = "running";
  #cleaned: Promise<void> | undefined;
  #saves = 0;
  #savedThisPause = false;
  private deviceStateSink: Promise<DeviceStateSink> | undefined;

  private readonly process: QemuProcess;
  private readonly qmpClient: QmpClient;
  private readonly ssh: GuestSsh;
  private readonly logger: Logger;

  private constructor(init: VmInit) {
    this.name = init.config.name;
    this.config = init.config;
    this.image = init.image;
    this.accel = init.accel;
    this.ramPath = init.ramPath;
    this.runDir = init.runDir;
    this.shmDir = init.shmDir;
    this.qmpSocket = init.qmpSocket;
    this.serialLog = init.serialLog;
    this.sshPort = init.sshPort;
    this.timings = init.timings;
    this.process = init.process;
    this.qmpClient = init.qmp;
    this.ssh = init.ssh;
    this.logger = init.logger;
    void this.process.exited.then((info) => this.onExit(info));
  }

  /** Boots a fresh VM and waits for its ready marker and SSH. */
  static async start(options: VmOptions): Promise<Vm> {
    const config = validateVmConfig(options);
    return Vm.launch(config, options, undefined);
  }

  /** Starts QEMU on a copy of `ramFile`, feeds it `deviceStateFile`, and resumes the guest. */
  static async restore(options: RestoreOptions): Promise<Vm> {
    const config = options.overrides
      ? validateVmConfig({ ...configInput(options.config), ...options.overrides })
      : options.config;
    if ((options.ramFile === undefined) === (options.lazyRam === undefined)) {
      throw new CheckpointError("restore", "give exactly one of ramFile and lazyRam", { vmId: config.name });
    }
    return Vm.launch(config, options, {
      ramFile: options.ramFile,
      lazyRam: options.lazyRam,
      deviceStateFile: options.deviceStateFile,
    });
  }

  get state(): VmState {
    return this.#stateValue;
  }

  get pid(): number {
    return this.process.pid;
  }

  /** The QMP connection, for commands this class does not wrap. */
  get qmp(): QmpClient {
    return this.qmpClient;
  }

  /** Runs `command` in the guest (through `sh -c`), whatever its exit status. */
  async exec(command: string, options: { timeoutMs?: number } = {}): Promise<ExecResult> {
    this.require(["running"], "exec");
    return this.ssh.exec(command, options);
  }

  /** Runs `command` in the guest and returns its stdout; throws `GuestCommandError` on non-zero exit. */
  async run(command: string, options: { timeoutMs?: number } = {}): Promise<string> {
    const result = await this.exec(command, options);
    if (result.exitCode !== 0) throw new GuestCommandError(this.name, command, result);
    return result.stdout;
  }

  /** QMP `stop`; returns the round-trip time in ms. */
  async pause(): Promise<number> {
    this.require(["running"], "pause");
    const t0 = performance.now();
    await this.qmpClient.stop();
    this.#stateValue = "paused";
    const ms = performance.now() - t0;
    this.logger.log("debug", "vm.paused", { ms });
    return ms;
  }

  /** QMP `cont`; returns the round-trip time in ms. */
  async resume(): Promise<number> {
    this.require(["paused"], "resume");
    const t0 = performance.now();
    await this.qmpClient.cont();
    this.#stateValue = "running";
    this.#savedThisPause = false;
    const ms = performance.now() - t0;
    this.logger.log("debug", "vm.resumed", { ms });
    return ms;
  }

  /**
   * Saves the device state (everything but the shared guest RAM) to `path`. Only while paused,
   * so the state matches the RAM file. The VM stays paused.
   */
  async saveDeviceState(
    path: string,
    options: { transport?: DeviceStateTransport } = {},
  ): Promise<DeviceStateSave> {
    this.requireUnsavedPause();
    const transport = options.transport ?? "unix";
    const t0 = performance.now();
    try {
      await saveDeviceStateTo(this.qmpClient, path, {
        transport,
        socketPath: join(this.runDir, `migrate-${this.#saves++}.sock`),
        timeoutMs: QMP_COMMAND_TIMEOUT_MS,
      });
    } catch (cause) {
      throw new CheckpointError("save-device-state", errorMessage(cause), { vmId: this.name, path, cause });
    }
    this.#savedThisPause = true;
    const ms = performance.now() - t0;
    const { size } = await stat(path);
    this.logger.log("info", "vm.device-state-saved", { path, bytes: size, ms, transport });
    return { path, bytes: size, ms, transport };
  }

  /**
   * Device state (everything but the shared guest RAM) into memory, through a socket this VM keeps
   * listening (made by `prepareDeviceState`, or here on first use). Only while paused; the VM stays
   * paused. Started right after `stop`, it can run alongside other work of the pause.
   */
  async captureDeviceState(): Promise<Buffer> {
    this.requireUnsavedPause();
    const sink = await this.prepareDeviceState();
    try {
      const stream = await sink.capture(this.qmpClient, QMP_COMMAND_TIMEOUT_MS);
      this.#savedThisPause = true;
      return stream;
    } catch (cause) {
      throw new CheckpointError("save-device-state", errorMessage(cause), { vmId: this.name, cause });
    }
  }

  /** Makes the device-state socket of `captureDeviceState` ahead of the first pause. */
  async prepareDeviceState(): Promise<DeviceStateSink> {
    this.deviceStateSink ??= DeviceStateSink.listen(join(this.runDir, "device-state.sock"));
    return this.deviceStateSink;
  }

  /** SIGKILL (failure injection); resolves once QEMU is gone and everything is cleaned up. */
  async kill(): Promise<void> {
    this.logger.log("info", "vm.kill", { pid: this.pid });
    await this.process.terminate("SIGKILL");
    await this.cleanup();
  }

  /** QMP `quit` (SIGKILL if QEMU does not exit in time), then clean up. Safe to call twice. */
  async shutdown(timeoutMs = 10_000): Promise<void> {
    if (this.process.alive) {
      try {
        await withTimeout(this.qmpClient.quit(), timeoutMs);
      } catch {
        // QEMU closing the socket while answering is normal; terminate() settles the rest.
      }
      await this.process.terminate("SIGTERM", timeoutMs);
    }
    await this.cleanup();
  }

  /** Waits for QEMU to exit by itself. */
  waitForExit(): Promise<ExitInfo> {
    return this.process.exited;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.shutdown();
  }

  private static async launch(
    config: VmConfig,
    options: Omit<VmOptions, keyof VmConfigInput>,
    incoming: IncomingState | undefined,
  ): Promise<Vm> {
    const t0 = performance.now();
    const image = typeof options.image === "object" ? options.image : await loadGuestImage(options.image);
    const logger = (options.logger ?? defaultLogger()).child({ vm: config.name });
    const qemuBinary = options.qemuBinary ?? "qemu-system-x86_64";
    const accel = await resolveAccel(config.accel as AccelOption, {
      image,
      qemuBinary,
      logger,
      probeBoot: kvmProbeBoot({ image, qemuBinary, logger }),
    });
    const privateKey = await readFile(image.clientKey);

    const runDir = await mkdtemp(join(options.runRoot ?? tmpdir(), `vpc-${config.name}-`));
    trackDir(runDir);
    let shmDir: string | undefined;
    let proc: QemuProcess | undefined;
    let qmp: QmpClient | undefined;
    let ssh: GuestSsh | undefined;
    try {
      shmDir = await mkdtemp(join(options.shmRoot ?? "/dev/shm", `vpc-${config.name}-`));
      trackDir(shmDir);
      const ramPath = join(shmDir, "ram");
      const qmpSocket = join(runDir, "qmp.sock");
      const serialLog = join(runDir, "serial.log");
      let ramRestoreMs = 0;
      if (incoming) {
        // The source QEMU must be gone or paused for good: it would keep writing through its mapping.
        const tc = performance.now();
        if (incoming.ramFile !== undefined) {
          await copyFile(incoming.ramFile, ramPath);
        } else {
          // Lazy: empty and sparse; lazyRam fills it once QEMU maps it.
          const fh = await open(ramPath, "wx", 0o600);
          await fh.truncate(config.memMiB * 1024 * 1024).finally(() => fh.close());
        }
        ramRestoreMs = performance.now() - tc;
      }
      const sshPort = await freePort();
      const args = buildQemuArgs({
        accel,
        cpus: config.cpus,
        memMiB: config.memMiB,
        ramPath,
        kernel: image.kernel,
        initrd: image.initrd,
        append: buildKernelCmdline(config.guest),
        qmpSocket,
        serialLog,
        sshPort,
        mgmtMac: deriveMac(config.name, 0),
        dataNics: config.dataNics,
        incoming: incoming !== undefined,
        extraArgs: config.extraQemuArgs,
      });
      const env: NodeJS.ProcessEnv = { ...process.env, ...config.env };
      if (config.preload) env.LD_PRELOAD = config.preload;
      logger.log("info", "vm.spawn", { accel, sshPort, ramPath, restore: incoming !== undefined, args });
      const tSpawn = performance.now();
      proc = await QemuProcess.spawn(qemuBinary, args, env);
      const scanner = new SerialScanner(image.readyMarker);
      const serial = new SerialFollower(serialLog, scanner);
      const tails = () => ({ serialTail: scanner.tail(), stderrTail: proc?.outputTail() ?? "" });
      const bootDeadline = Date.now() + config.bootTimeoutMs;

      qmp = await connectQmp(qmpSocket, proc, config.name, bootDeadline);
      // events: migration completion is announced (MIGRATION), so nobody polls query-migrate.
      await qmp.migrateSetCapabilities([
        { capability: "x-ignore-shared", state: true },
        { capability: "events", state: true },
      ]);
      const qemuStartMs = performance.now() - tSpawn;
      if (incoming?.lazyRam) {
        const tl = performance.now();
        await incoming.lazyRam(ramPath, proc.pid);
        ramRestoreMs += performance.now() - tl;
      }

      const tGuest = performance.now();
      let contMs = 0;
      if (incoming) {
        await runIncoming(qmp, proc, config.name, incoming.deviceStateFile, bootDeadline);
        const guestMs = performance.now() - tGuest;
        const tc = performance.now();
        await qmp.cont();
        contMs = performance.now() - tc;
        logger.log("info", "vm.incoming-done", { ms: guestMs });
      } else {
        await waitForReady(serial, scanner, proc, config.name, bootDeadline, tails);
        logger.log("info", "vm.ready", { ms: performance.now() - tGuest, line: scanner.readyLine });
      }
      const guestMs = performance.now() - tGuest - contMs;

      const tSsh = performance.now();
      ssh = new GuestSsh({ vmId: config.name, port: sshPort, privateKey, logger });
      const sshConnect = ssh.connect(bootDeadline);
      const exitedEarly = proc.exited.then((info) => {
        throw new BootError(
          config.name,
          "qemu-exited",
          `qemu exited (code ${info.code}, signal ${info.signal})`,
          tails(),
        );
      });
      await Promise.race([sshConnect, exitedEarly]);
      exitedEarly.catch(() => undefined);
      const sshMs = performance.now() - tSsh;
      const timings: StartTimings = {
        ramRestoreMs,
        qemuStartMs,
        guestMs,
        contMs,
        sshMs,
        totalMs: performance.now() - t0,
      };
      logger.log("info", "vm.started", { ...timings });
      return new Vm({
        config,
        image,
        accel,
        ramPath,
        runDir,
        shmDir,
        qmpSocket,
        serialLog,
        sshPort,
        timings,
        process: proc,
        qmp,
        ssh,
        logger,
      });
    } catch (e) {
      ssh?.close();
      await qmp?.close().catch(() => undefined);
      await proc?.terminate("SIGKILL");
      await removeDirs([shmDir, runDir]);
      if (ControllerError.isInstance(e)) throw e;
      // Anything else is a local failure (spawn, files, QMP): say what the VM was doing.
      if (incoming) throw new CheckpointError("restore", errorMessage(e), { vmId: config.name, cause: e });
      throw new BootError(
        config.name,
        "start-failed",
        errorMessage(e),
        { serialTail: "", stderrTail: proc?.outputTail() ?? "" },
        e,
      );
    }
  }

  /** Device state may be saved once per pause: QEMU refuses a second migrate until the guest ran
   * again ("paused due to previous migration"). */
  private requireUnsavedPause(): void {
    this.require(["paused"], "save device state");
    if (this.#savedThisPause) {
      throw new VmStateError(
        this.name,
        "paused-after-save",
        ["paused"],
        "save device state twice in one pause",
      );
    }
  }

  private require(states: readonly VmState[], op: string): void {
    if (!states.includes(this.#stateValue)) throw new VmStateError(this.name, this.#stateValue, states, op);
  }

  private onExit(info: ExitInfo): void {
    if (this.#stateValue !== "exited") {
      this.logger.log(this.#cleaned ? "debug" : "warn", "vm.exited", {
        code: info.code,
        signal: info.signal,
      });
    }
    void this.cleanup();
  }

  private cleanup(): Promise<void> {
    this.#stateValue = "exited";
    this.#cleaned ??= (async () => {
      this.ssh.close();
      await this.deviceStateSink?.then((s) => s.close()).catch(() => undefined);
      await this.qmpClient.close().catch(() => undefined);
      await this.process.terminate("SIGKILL");
      await removeDirs([this.shmDir, this.runDir]);
      this.logger.log("debug", "vm.cleaned", {});
    })();
    return this.#cleaned;
  }
}

type VmInit = Pick<
  Vm,
  | "config"
  | "image"
  | "accel"
  | "ramPath"
  | "runDir"
  | "shmDir"
  | "qmpSocket"
  | "serialLog"
  | "sshPort"
  | "timings"
> & {
  readonly process: QemuProcess;
  readonly qmp: QmpClient;
  readonly ssh: GuestSsh;
  readonly logger: Logger;
};

interface IncomingState {
  readonly ramFile: string | undefined;
  readonly lazyRam: ((ramPath: string, qemuPid: number) => Promise<void>) | undefined;
  readonly deviceStateFile: string;
}

async function connectQmp(
  path: string,
  proc: QemuProcess,
  vmId: string,
  deadline: number,
): Promise<QmpClient> {
  const until = Math.min(deadline, Date.now() + QMP_CONNECT_TIMEOUT_MS);
  let last: unknown;
  while (Date.now() < until) {
    if (!proc.alive) throw exitedError(proc, vmId);
    try {
      return await QmpClient.connect(
        { path },
        { connectTimeoutMs: Math.max(1000, until - Date.now()), commandTimeoutMs: QMP_COMMAND_TIMEOUT_MS },
      );
    } catch (e) {
      // The socket appears a moment after spawn; keep trying until QEMU is up or gone.
      last = e;
      await sleep(20);
    }
  }
  if (!proc.alive) throw exitedError(proc, vmId);
  throw new QemuExitedError(vmId, null, null, `QMP socket ${path} not reachable: ${errorMessage(last)}`);
}

function exitedError(proc: QemuProcess, vmId: string): QemuExitedError {
  return new QemuExitedError(
    vmId,
    proc.exitInfo?.code ?? null,
    proc.exitInfo?.signal ?? null,
    proc.outputTail(),
  );
}

async function runIncoming(
  qmp: QmpClient,
  proc: QemuProcess,
  vmId: string,
  deviceStateFile: string,
  deadline: number,
): Promise<void> {
  if (deviceStateFile.includes("'")) {
    throw new CheckpointError("restore", "device state path must not contain a single quote", {
      path: deviceStateFile,
    });
  }
  await stat(deviceStateFile).catch((cause) => {
    throw new CheckpointError("restore", "device state file missing", { vmId, path: deviceStateFile, cause });
  });
  await qmp.migrateIncoming(`exec:cat '${deviceStateFile}'`);
  // With -S the run state goes inmigrate → paused when the stream is loaded; a bad stream
  // makes QEMU exit. Poll without sleeping long: each QMP round trip is well under 1 ms.
  for (;;) {
    if (!proc.alive) {
      throw new CheckpointError("restore", `qemu exited while loading device state: ${proc.outputTail()}`, {
        vmId,
        path: deviceStateFile,
      });
    }
    if (Date.now() > deadline)
      throw new CheckpointError("restore", "timed out loading device state", { vmId });
    let status: string;
    try {
      status = (await qmp.queryStatus()).status;
    } catch (cause) {
      // QMP breaking usually means QEMU is exiting after a bad stream; report that if so.
      await Promise.race([proc.exited, sleep(1000)]);
      if (proc.alive)
        throw new CheckpointError("restore", "QMP failed while loading device state", { vmId, cause });
      continue;
    }
    if (status !== "inmigrate") return;
    await sleep(1);
  }
}

/** Reads a growing serial log file and feeds it to the scanner. */
class SerialFollower {
  private offset = 0;
  constructor(
    private readonly path: string,
    private readonly scanner: SerialScanner,
  ) {}

  async poll(): Promise<void> {
    let fh: Awaited<ReturnType<typeof open>> | undefined;
    try {
      fh = await open(this.path, "r");
    } catch {
      return; // not created yet
    }
    try {
      const buf = Buffer.alloc(64 * 1024);
      for (;;) {
        const { bytesRead } = await fh.read(buf, 0, buf.length, this.offset);
        if (bytesRead === 0) break;
        this.offset += bytesRead;
        this.scanner.push(buf.subarray(0, bytesRead).toString("utf8"));
      }
    } finally {
      await fh.close();
    }
  }
}

async function waitForReady(
  serial: SerialFollower,
  scanner: SerialScanner,
  proc: QemuProcess,
  vmId: string,
  deadline: number,
  tails: () => { serialTail: string; stderrTail: string },
): Promise<void> {
  for (;;) {
    await serial.poll();
    if (scanner.readyLine !== undefined) return;
    if (scanner.panicLine !== undefined) throw new BootError(vmId, "guest-panic", scanner.panicLine, tails());
    if (!proc.alive) {
      await serial.poll();
      const info = proc.exitInfo;
      throw new BootError(
        vmId,
        "qemu-exited",
        `qemu exited (code ${info?.code}, signal ${info?.signal})`,
        tails(),
      );
    }
    if (Date.now() > deadline)
      throw new BootError(vmId, "timeout", "no ready marker before the boot timeout", tails());
    await Promise.race([sleep(SERIAL_POLL_MS), proc.exited]);
  }
}

function configInput(config: VmConfig): VmConfigInput {
  return {
    name: config.name,
    memMiB: config.memMiB,
    cpus: config.cpus,
    accel: config.accel,
    guest: config.guest,
    dataNics: config.dataNics.map((n) => ({ netdev: n.netdev, mac: n.mac })),
    env: config.env,
    ...(config.preload === undefined ? {} : { preload: config.preload }),
    bootTimeoutMs: config.bootTimeoutMs,
    extraQemuArgs: config.extraQemuArgs,
  };
}

async function removeDirs(dirs: readonly (string | undefined)[]): Promise<void> {
  for (const dir of dirs) {
    if (!dir) continue;
    await rm(dir, { recursive: true, force: true });
    untrackDir(dir);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * The probe boot of `resolveAccel("auto")`: `image` booted under KVM with the probe's short
 * limit; ready means this machine's KVM works for our guests (a `/dev/kvm` that opens but hangs
 * guests, as under kvm_pvm, is not ready).
 */
export function kvmProbeBoot(o: {
  readonly image: GuestImage;
  readonly qemuBinary: string;
  readonly logger: Logger;
}): (timeoutMs: number) => Promise<{ ready: boolean; detail: string }> {
  return async (timeoutMs) => {
    const t0 = performance.now();
    try {
      const vm = await Vm.start({
        name: "kvm-probe",
        image: o.image,
        qemuBinary: o.qemuBinary,
        accel: "kvm",
        bootTimeoutMs: timeoutMs,
        logger: o.logger,
      });
      await vm.shutdown();
      return { ready: true, detail: `guest ready under KVM in ${Math.round(performance.now() - t0)} ms` };
    } catch (e) {
      return {
        ready: false,
        detail: `probe boot under KVM failed: ${e instanceof Error ? e.message.split("\n", 1)[0] : e}`,
      };
    }
  };
}
