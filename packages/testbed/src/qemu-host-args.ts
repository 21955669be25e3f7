/**
 * Pure parts of starting an L1 host VM: option validation and the extra kernel and QEMU
 * arguments on top of what `Vm` already builds (management NIC, RAM backend, serial, QMP).
 */
import { ConfigError } from "@vpc/controller";

export interface FabricOption {
  /** Address of the host's fabric NIC (eth1) with prefix, e.g. 10.77.0.21/24. */
  readonly ip: string;
  /** Default route through the fabric instead of the management NIC. */
  readonly gw?: string;
  /**
   * Tap device for the fabric NIC. An existing (persistent) tap is opened as is; otherwise
   * QEMU creates it and it disappears when QEMU exits. Default `vpcf-<name>` (cut to 15).
   */
  readonly tap?: string;
  /** Bridge to enslave the tap to once QEMU has created it (e.g. the testbed's fabric bridge). */
  readonly bridge?: string;
  /** A raw `-netdev` spec used instead of a tap (e.g. `stream,...` or `hubport,...`); no `id=`. */
  readonly netdev?: string;
}

export interface HostArgsInput {
  readonly name: string;
  readonly memMiB: number;
  /** Size of the L1's /dev/shm (tmpfs `size=`); default 3/4 of `memMiB`. */
  readonly shmSize?: string;
  /** Files on this machine whose lines are added to the L1's root authorized_keys. */
  readonly authorizedKeys: readonly string[];
  /** Directory holding `lib/modules/RELEASE` (the host image's `modules`). */
  readonly modulesDir: string;
  /** Directory of this machine exported as the L1's root (default "/"). */
  readonly rootDir: string;
  readonly fabric?: FabricOption;
  /** QEMU writes its PID here as soon as it starts (a crash-proof owner can record it before boot ends). */
  readonly pidFile?: string;
}

export interface HostArgs {
  readonly kernelArgs: string[];
  readonly qemuArgs: string[];
  /** `-netdev` spec of the fabric NIC (eth1), if any. */
  readonly fabricNetdev: string | undefined;
  readonly tap: string | undefined;
}

const FABRIC_NETDEV_ID = "fabric";
const IFNAME = /^[A-Za-z0-9_.-]{1,15}$/;
const SIZE = /^(\d+[kmg]?|\d{1,3}%)$/i;

function fail(field: string, message: string): never {
  throw new ConfigError(field, message);
}

/** Kernel arguments are split on whitespace, authkeys on commas, QEMU options on commas. */
function checkPath(field: string, path: string): void {
  if (!path.startsWith("/")) fail(field, `must be an absolute path: ${path}`);
  if (/[\s,]/.test(path)) fail(field, `must not contain spaces or commas: ${path}`);
}

/** The tap name used when none is given: interface names are at most 15 bytes. */
export function defaultTapName(name: string): string {
  return `vpcf-${name}`.slice(0, 15);
}

export function buildHostArgs(input: HostArgsInput): HostArgs {
  checkPath("rootDir", input.rootDir);
  checkPath("modulesDir", input.modulesDir);
  for (const [i, p] of input.authorizedKeys.entries()) checkPath(`authorizedKeys[${i}]`, p);
  const shm = input.shmSize ?? `${Math.floor((input.memMiB * 3) / 4)}M`;
  if (!SIZE.test(shm)) fail("shmSize", `not a tmpfs size (like 1536M, 2G or 75%): ${shm}`);

  const kernelArgs = [`vpc.shm=${shm}`, `vpc.modules=${input.modulesDir}`];
  if (input.authorizedKeys.length > 0) kernelArgs.push(`vpc.authkeys=${input.authorizedKeys.join(",")}`);
  const qemuArgs = [
    // The L1 boots on this machine's own files: read-only, remapping inode numbers of the
    // several filesystems below the root so they stay unique inside the L1.
    "-virtfs",
    `local,path=${input.rootDir},mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap`,
  ];
  if (input.pidFile !== undefined) {
    checkPath("pidFile", input.pidFile);
    qemuArgs.push("-pidfile", input.pidFile);
  }

  const f = input.fabric;
  if (f === undefined) return { kernelArgs, qemuArgs, fabricNetdev: undefined, tap: undefined };
  if (f.netdev !== undefined && (f.tap !== undefined || f.bridge !== undefined))
    fail("fabric", "give either netdev or tap/bridge, not both");
  if (f.netdev !== undefined) {
    if (/(^|,)id=/.test(f.netdev)) fail("fabric.netdev", "must not set id= (the host names it)");
    return { kernelArgs, qemuArgs, fabricNetdev: `${f.netdev},id=${FABRIC_NETDEV_ID}`, tap: undefined };
  }
  const tap = f.tap ?? defaultTapName(input.name);
  if (!IFNAME.test(tap)) fail("fabric.tap", `not an interface name (≤ 15 of [A-Za-z0-9_.-]): ${tap}`);
  if (f.bridge !== undefined && !IFNAME.test(f.bridge))
    fail("fabric.bridge", `not an interface name: ${f.bridge}`);
  return {
    kernelArgs,
    qemuArgs,
    fabricNetdev: `tap,id=${FABRIC_NETDEV_ID},ifname=${tap},script=no,downscript=no`,
    tap,
  };
}
