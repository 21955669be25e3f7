/**
 * An L1 host VM: a QEMU VM that boots on this machine's own root filesystem (9p, read-only,
 * under a tmpfs overlay; images/host) and acts as a physical host for nested L2 guests. It is
 * a `Vm` booted from the host image with a `-virtfs` share and a fabric NIC, so it inherits the
 * private runtime and RAM directories, serial log, PID tracking, clean-up on every path and the
 * SSH connection over the management NIC's loopback port forward.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import type { Accel, AccelOption, ExecResult } from "@vpc/controller";
import {
  BootError,
  ConfigError,
  defaultLogger,
  kvmProbeBoot,
  type Logger,
  loadGuestImage,
  resolveAccel,
  Vm,
  type VmState,
} from "@vpc/controller";
import { buildHostArgs, type FabricOption } from "./qemu-host-args.js";
import { type HostImage, loadHostImage } from "./qemu-host-image.js";

export type { FabricOption } from "./qemu-host-args.js";
export { defaultHostImageDir, type HostImage, loadHostImage } from "./qemu-host-image.js";

export interface QemuHostOptions {
  readonly name: string;
  /** L1 RAM; its L2 guests' RAM lives in its /dev/shm (default 1536). */
  readonly memMiB?: number;
  readonly cpus?: number;
  /** The fabric NIC (eth1 in the L1); without it the L1 only has its management NIC. */
  readonly fabric?: FabricOption;
  /** Extra /etc/hosts entries in the L1, name → address. */
  readonly hosts?: Readonly<Record<string, string>>;
  /** Size of the L1's /dev/shm (tmpfs `size=`, e.g. `1G`, `90%`); default 3/4 of `memMiB`. */
  readonly shmSize?: string;
  /**
   * authorized_keys files on this machine (e.g. the testbed's public key) added to the L1's
   * root account, besides the image's own `client_key.pub`, which the controller uses.
   */
  readonly authorizedKeys?: readonly string[];
  /** A loaded host image or its directory; default `defaultHostImageDir()`. */
  readonly image?: HostImage | string;
  /** Directory exported as the L1's root filesystem (default "/"). */
  readonly rootDir?: string;
  /** `auto` decides with the guest image's cached KVM probe (FIELD-NOTES §1); default `tcg`. */
  readonly accel?: AccelOption;
  readonly qemuBinary?: string;
  /** Parent of the private runtime directory (QMP socket, serial log; default os.tmpdir()). */
  readonly runDir?: string;
  /**
   * QEMU writes its PID here at start-up, before the L1 boots: whoever must be able to kill it
   * after a crash of this process (the testbed's `down`) records this path first.
   */
  readonly pidFile?: string;
  /** Parent of the private directory of the L1's RAM file (default /dev/shm). */
  readonly shmRoot?: string;
  /** Ready marker and SSH must arrive within this (default 180 000: TCG on a busy machine). */
  readonly bootTimeoutMs?: number;
  readonly logger?: Logger;
}

export interface SshEndpoint {
  readonly host: string;
  readonly port: number;
  readonly user: "root";
  /** Private key in OpenSSH format that the L1 accepts. */
  readonly privateKeyPath: string;
}

const DEFAULT_HOST_MEM_MIB = 1536;
const DEFAULT_HOST_BOOT_TIMEOUT_MS = 180_000;

export class QemuHost {
  readonly name: string;
  readonly image: HostImage;
  /** The underlying VM (QMP, serial log, PID, timings). */
  readonly vm: Vm;
  /** SSH over the management NIC: a port forward on 127.0.0.1 (works without any fabric). */
  readonly ssh: SshEndpoint;
  /** SSH over the fabric, when the host has a fabric NIC. */
  readonly fabricSsh: SshEndpoint | undefined;
  /** The tap device of the fabric NIC (QEMU-created ones vanish when QEMU exits). */
  readonly tap: string | undefined;
  /** From spawn until SSH answered, in ms. */
  readonly readyMs: number;

  private constructor(init: {
    name: string;
    image: HostImage;
    vm: Vm;
    fabricIp: string | undefined;
    tap: string | undefined;
    readyMs: number;
  }) {
    this.name = init.name;
    this.image = init.image;
    this.vm = init.vm;
    this.tap = init.tap;
    this.readyMs = init.readyMs;
    this.ssh = {
      host: "127.0.0.1",
      port: init.vm.sshPort,
      user: "root",
      privateKeyPath: init.image.clientKey,
    };
    this.fabricSsh =
      init.fabricIp === undefined
        ? undefined
        : { host: init.fabricIp, port: 22, user: "root", privateKeyPath: init.image.clientKey };
  }

  /**
   * Boots the L1 host and waits for its ready marker (dropbear listening) and SSH.
   * On failure nothing is left behind (QEMU, its tap, directories) and the error is a
   * `BootError` (serial and stderr tails), `ConfigError` or `GuestImageError`.
   */
  static async start(options: QemuHostOptions): Promise<QemuHost> {
    const image = typeof options.image === "object" ? options.image : await loadHostImage(options.image);
    const logger = (options.logger ?? defaultLogger()).child({ host: options.name });
    const memMiB = options.memMiB ?? DEFAULT_HOST_MEM_MIB;
    const qemuBinary = options.qemuBinary ?? "qemu-system-x86_64";
    const args = buildHostArgs({
      name: options.name,
      memMiB,
      ...(options.shmSize === undefined ? {} : { shmSize: options.shmSize }),
      authorizedKeys: options.authorizedKeys ?? [],
      modulesDir: image.modulesDir,
      rootDir: options.rootDir ?? "/",
      ...(options.fabric === undefined ? {} : { fabric: options.fabric }),
      ...(options.pidFile === undefined ? {} : { pidFile: options.pidFile }),
    });
    const accel = await hostAccel(options.accel ?? "tcg", qemuBinary, logger);
    const vm = await Vm.start({
      name: options.name,
      image,
      memMiB,
      ...(options.cpus === undefined ? {} : { cpus: options.cpus }),
      accel,
      qemuBinary,
      guest: {
        hostname: options.name,
        ...(options.fabric === undefined ? {} : { ip: options.fabric.ip }),
        ...(options.fabric?.gw === undefined ? {} : { gw: options.fabric.gw }),
        ...(options.hosts === undefined ? {} : { hosts: options.hosts }),
        kernelArgs: args.kernelArgs,
      },
      dataNics: args.fabricNetdev === undefined ? [] : [args.fabricNetdev],
      extraQemuArgs: args.qemuArgs,
      bootTimeoutMs: options.bootTimeoutMs ?? DEFAULT_HOST_BOOT_TIMEOUT_MS,
      ...(options.runDir === undefined ? {} : { runRoot: options.runDir }),
      ...(options.shmRoot === undefined ? {} : { shmRoot: options.shmRoot }),
      logger,
    });
    if (args.tap !== undefined && options.fabric?.bridge !== undefined) {
      try {
        await promisify(execFile)("ip", [
          "link",
          "set",
          "dev",
          args.tap,
          "master",
          options.fabric.bridge,
          "up",
        ]);
      } catch (cause) {
        await vm.kill();
        throw new BootError(
          options.name,
          "start-failed",
          `cannot attach tap ${args.tap} to bridge ${options.fabric.bridge}`,
          { serialTail: "", stderrTail: String((cause as { stderr?: unknown }).stderr ?? "") },
          cause,
        );
      }
    }
    const fabricIp = options.fabric?.ip.split("/", 1)[0];
    logger.log("info", "host.ready", {
      ms: vm.timings.totalMs,
      sshPort: vm.sshPort,
      fabricIp,
      tap: args.tap,
    });
    return new QemuHost({
      name: options.name,
      image,
      vm,
      fabricIp,
      tap: args.tap,
      readyMs: vm.timings.totalMs,
    });
  }

  get state(): VmState {
    return this.vm.state;
  }

  get pid(): number {
    return this.vm.pid;
  }

  /** Runs `command` in the L1 (root's login shell, `sh -c`), whatever its exit status. */
  exec(command: string, options: { timeoutMs?: number } = {}): Promise<ExecResult> {
    return this.vm.exec(command, options);
  }

  /** Runs `command` in the L1; throws `GuestCommandError` on a non-zero exit. */
  run(command: string, options: { timeoutMs?: number } = {}): Promise<string> {
    return this.vm.run(command, options);
  }

  /** QMP `quit` (SIGKILL after `timeoutMs`), then clean-up; its L2 guests die with it. Safe twice. */
  stop(timeoutMs = 10_000): Promise<void> {
    return this.vm.shutdown(timeoutMs);
  }

  /** SIGKILL (failure injection), then clean-up. */
  kill(): Promise<void> {
    return this.vm.kill();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

async function hostAccel(option: AccelOption, qemuBinary: string, logger: Logger): Promise<Accel> {
  if (option !== "tcg" && option !== "kvm" && option !== "auto")
    throw new ConfigError("accel", "must be tcg, kvm or auto");
  if (option !== "auto") return option;
  // Probing with the host image would boot it without its 9p root and cache a false "no":
  // the probe answers for this machine's KVM, so ask it with the guest image.
  const image = await loadGuestImage();
  return resolveAccel("auto", {
    image,
    qemuBinary,
    logger,
    probeBoot: kvmProbeBoot({ image, qemuBinary, logger }),
  });
}
