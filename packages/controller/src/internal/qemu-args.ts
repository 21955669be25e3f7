/**
 * Pure builders for the QEMU command line and the guest kernel command line. Everything the
 * controller passes to QEMU is decided here, so it can be unit-tested without QEMU.
 */
import { createHash } from "node:crypto";

export type Accel = "tcg" | "kvm";

export interface DataNic {
  /** The `-netdev` id (parsed from the spec, or assigned). */
  readonly id: string;
  /** The full `-netdev` argument, including `id=`. */
  readonly netdev: string;
  readonly mac: string;
}

/** Everything needed to start one QEMU process. Paths must be absolute. */
export interface QemuLaunchSpec {
  readonly accel: Accel;
  readonly cpus: number;
  readonly memMiB: number;
  readonly ramPath: string;
  readonly kernel: string;
  readonly initrd: string;
  readonly append: string;
  readonly qmpSocket: string;
  readonly serialLog: string;
  readonly sshPort: number;
  readonly mgmtMac: string;
  readonly dataNics: readonly DataNic[];
  /** Start paused and wait for `migrate-incoming` (restore). */
  readonly incoming: boolean;
  readonly extraArgs: readonly string[];
}

export const MGMT_NETDEV_ID = "mgmt";

export function buildQemuArgs(spec: QemuLaunchSpec): string[] {
  const args = [
    "-nodefaults",
    "-display",
    "none",
    // A guest panic (panic=-1 reboots at once) or reboot ends QEMU instead of looping.
    "-no-reboot",
    "-accel",
    spec.accel,
    "-machine",
    "q35,memory-backend=mem",
    "-smp",
    String(spec.cpus),
    "-m",
    `${spec.memMiB}M`,
    // Guest RAM lives in a file we can read (dirty-log agent, checkpoint engines): share=on
    // makes guest writes land in the file, and x-ignore-shared leaves it out of device state.
    "-object",
    `memory-backend-file,id=mem,size=${spec.memMiB}M,mem-path=${spec.ramPath},share=on`,
    "-kernel",
    spec.kernel,
    "-initrd",
    spec.initrd,
    "-append",
    spec.append,
    "-chardev",
    `socket,id=qmp,path=${spec.qmpSocket},server=on,wait=off`,
    "-mon",
    "chardev=qmp,mode=control",
    "-chardev",
    `file,id=serial0,path=${spec.serialLog}`,
    "-serial",
    "chardev:serial0",
    // Management NIC first, so the guest sees it as eth0.
    "-netdev",
    `user,id=${MGMT_NETDEV_ID},net=10.0.2.0/24,hostfwd=tcp:127.0.0.1:${spec.sshPort}-:22`,
    "-device",
    `virtio-net-pci,netdev=${MGMT_NETDEV_ID},mac=${spec.mgmtMac}`,
  ];
  for (const nic of spec.dataNics) {
    args.push("-netdev", nic.netdev, "-device", `virtio-net-pci,netdev=${nic.id},mac=${nic.mac}`);
  }
  if (spec.incoming) args.push("-S", "-incoming", "defer");
  args.push(...spec.extraArgs);
  return args;
}

/** Returns the `id=` of a `-netdev` spec, if it has one. */
export function netdevId(spec: string): string | undefined {
  for (const part of spec.split(",").slice(1)) {
    if (part.startsWith("id=")) return part.slice(3);
  }
  return undefined;
}

/**
 * A locally administered, stable MAC for NIC `index` of VM `name` (0 = management). QEMU
 * would give every VM the same default MACs, which breaks a shared virtual network; a stable
 * one also keeps the MAC the same across checkpoint and restore.
 */
export function deriveMac(name: string, index: number): string {
  const h = createHash("sha256").update(`${name}/${index}`).digest();
  const bytes = [0x52, 0x54, 0x00, h[0] ?? 0, h[1] ?? 0, h[2] ?? 0];
  return bytes.map((b) => b.toString(16).padStart(2, "0")).join(":");
}

export interface GuestParams {
  readonly hostname: string;
  /** Data NIC address with prefix, e.g. 192.168.77.11/24. */
  readonly ip?: string;
  readonly gw?: string;
  /** Extra /etc/hosts entries, name → address. */
  readonly hosts?: Readonly<Record<string, string>>;
  /** Further kernel parameters, appended as given. */
  readonly kernelArgs?: readonly string[];
}

/** The guest kernel command line; the guest's init reads the `vpc.*` parameters. */
export function buildKernelCmdline(params: GuestParams): string {
  const parts = [
    "console=ttyS0",
    "random.trust_cpu=on",
    "panic=-1",
    // TCG on a busy machine can miss the boot-time IO-APIC timer check, which then panics
    // ("IO-APIC + timer doesn't work"); the emulated timer works, so skip the check.
    "no_timer_check",
    // Boot work no VM here needs, slow under TCG and far slower in a VM nested in a TCG VM
    // (initcall_debug, TCG, 192 MiB: crypto_algapi_init 0.6-1.9 s, crypto_kdf108_init 0.2-1.3 s,
    // i8042_init up to 1.4 s): the crypto self-tests and the probe for a PS/2 controller.
    "cryptomgr.notests",
    "initcall_blacklist=i8042_init,crypto_kdf108_init",
    // TCG does not speculate: retpolines and RSB filling would only cost.
    "mitigations=off",
    "quiet",
    `vpc.hostname=${params.hostname}`,
  ];
  if (params.ip) parts.push(`vpc.ip=${params.ip}`);
  if (params.gw) parts.push(`vpc.gw=${params.gw}`);
  const hosts = Object.entries(params.hosts ?? {});
  if (hosts.length > 0) parts.push(`vpc.hosts=${hosts.map(([n, a]) => `${n}=${a}`).join(",")}`);
  parts.push(...(params.kernelArgs ?? []));
  return parts.join(" ");
}
