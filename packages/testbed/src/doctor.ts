/**
 * `vpc doctor`, the pure half: turns facts about the machine (gathered by doctor-probes.ts)
 * into a list of checks, each with the command that fixes what is missing. No I/O here, so
 * every verdict and every piece of advice is unit-tested from literal facts.
 */

export type CheckStatus = "ok" | "missing" | "warn";

export interface DoctorCheck {
  /** Stable id, e.g. `qemu`, `qemu-firmware`, `uffd-wp`. */
  readonly id: string;
  readonly title: string;
  readonly status: CheckStatus;
  /** A missing required piece makes the report fail (exit 1). */
  readonly required: boolean;
  readonly detail: string;
  /** Shell command (or instruction) that fixes a missing piece. */
  readonly fix?: string;
}

export interface DoctorReport {
  readonly ok: boolean;
  readonly checks: readonly DoctorCheck[];
}

/** Outcome of one probe that either worked or failed with a message. */
export interface ProbeOutcome {
  readonly ok: boolean;
  readonly detail: string;
}

export interface DoctorFacts {
  readonly node: { readonly version: string };
  /** First line of `qemu-system-x86_64 --version`, or null when it does not run. */
  readonly qemuVersion: string | null;
  /** Found paths of QEMU modules and firmware, by file name; missing names map to null. */
  readonly qemuFiles: Readonly<Record<string, string | null>>;
  /** Write-protect tracking of a shared-memory mapping through the dirty-log agent. */
  readonly uffdWp: ProbeOutcome | { readonly ok: "unknown"; readonly detail: string };
  readonly tun: ProbeOutcome;
  readonly netns: ProbeOutcome;
  readonly bridge: ProbeOutcome;
  readonly kvm: {
    readonly devKvm: boolean;
    /** The cached probe-boot answer for this machine, QEMU and guest kernel, if any. */
    readonly cached: { readonly kvm: boolean; readonly detail: string; readonly probedAt: string } | null;
  };
  readonly shm: { readonly freeBytes: number; readonly totalBytes: number } | null;
  /** Resolved paths of commands on PATH, by name; missing names map to null. */
  readonly commands: Readonly<Record<string, string | null>>;
  readonly images: {
    readonly guest: ProbeOutcome;
    readonly host: ProbeOutcome;
  };
}

export interface DoctorPolicy {
  /** Free /dev/shm below this is missing (guest RAM files and staging live there). */
  readonly minShmBytes: number;
  readonly minQemu: readonly [number, number];
  readonly minNodeMajor: number;
}

export const DEFAULT_DOCTOR_POLICY: DoctorPolicy = {
  minShmBytes: 2 * 1024 ** 3,
  minQemu: [7, 2],
  minNodeMajor: 20,
};

/** QEMU's TCG accelerator (a module in Debian's build) and the firmware every x86 boot loads. */
export const QEMU_MODULES = ["accel-tcg-x86_64.so"] as const;
export const QEMU_FIRMWARE = ["bios-256k.bin", "linuxboot_dma.bin", "kvmvapic.bin"] as const;
const FIRMWARE_PACKAGE: Readonly<Record<string, string>> = {
  "bios-256k.bin": "seabios",
  "linuxboot_dma.bin": "qemu-system-data",
  "kvmvapic.bin": "qemu-system-data",
};

/** Commands the testbed runs, with the Debian package that provides each. */
export const COMMAND_PACKAGES: Readonly<Record<string, string>> = {
  mpicc: "mpich",
  mpiexec: "mpich",
  dropbear: "dropbear-bin",
  dropbearkey: "dropbear-bin",
  dropbearconvert: "dropbear-bin",
  dbclient: "dropbear-bin",
  ip: "iproute2",
  busybox: "busybox-static",
  cpio: "cpio",
  zstd: "zstd",
  depmod: "kmod",
  gcc: "gcc",
  make: "make",
};

const APT = "apt-get install -y";

/** Parses `QEMU emulator version 7.2.22 (...)` into [7, 2, 22]. */
export function parseQemuVersion(line: string): [number, number, number] | null {
  const m = /version (\d+)\.(\d+)(?:\.(\d+))?/.exec(line);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)] : null;
}

function atLeast(v: readonly number[], min: readonly number[]): boolean {
  for (let i = 0; i < min.length; i++) {
    const a = v[i] ?? 0;
    const b = min[i] ?? 0;
    if (a !== b) return a > b;
  }
  return true;
}

function gib(bytes: number): string {
  return `${(bytes / 1024 ** 3).toFixed(1)} GiB`;
}

function packagesFor(names: readonly string[], table: Readonly<Record<string, string>>): string {
  return [...new Set(names.map((n) => table[n] ?? n))].join(" ");
}

/** Every check, in the order a user should fix them. */
export function evaluateDoctor(
  facts: DoctorFacts,
  policy: DoctorPolicy = DEFAULT_DOCTOR_POLICY,
): DoctorReport {
  const checks: DoctorCheck[] = [];
  const add = (c: DoctorCheck) => checks.push(c);

  const nodeMajor = Number(/^v?(\d+)/.exec(facts.node.version)?.[1] ?? 0);
  add({
    id: "node",
    title: "Node.js",
    required: true,
    ...(nodeMajor >= policy.minNodeMajor
      ? { status: "ok", detail: facts.node.version }
      : {
          status: "missing",
          detail: `${facts.node.version}; needs ≥ ${policy.minNodeMajor}`,
          fix: `install Node.js ${policy.minNodeMajor} (e.g. ${APT} nodejs from NodeSource)`,
        }),
  });

  const qv = facts.qemuVersion === null ? null : parseQemuVersion(facts.qemuVersion);
  const minQemu = policy.minQemu.join(".");
  if (facts.qemuVersion === null || qv === null) {
    add({
      id: "qemu",
      title: "QEMU (qemu-system-x86_64)",
      required: true,
      status: "missing",
      detail:
        facts.qemuVersion === null
          ? "qemu-system-x86_64 does not run"
          : `unreadable version: ${facts.qemuVersion}`,
      fix: `${APT} qemu-system-x86`,
    });
  } else {
    const ok = atLeast(qv, policy.minQemu);
    add({
      id: "qemu",
      title: "QEMU (qemu-system-x86_64)",
      required: true,
      status: ok ? "ok" : "missing",
      detail: ok
        ? qv.join(".")
        : `${qv.join(".")}; needs ≥ ${minQemu} (-netdev stream, memory-backend on q35)`,
      ...(ok ? {} : { fix: `${APT} qemu-system-x86 (Debian 12 ships 7.2)` }),
    });
  }

  const missingModules = QEMU_MODULES.filter((n) => !facts.qemuFiles[n]);
  add({
    id: "qemu-modules",
    title: "QEMU TCG module",
    required: true,
    ...(missingModules.length === 0
      ? { status: "ok", detail: QEMU_MODULES.map((n) => facts.qemuFiles[n]).join(", ") }
      : {
          status: "missing",
          detail: `not found: ${missingModules.join(", ")} (QEMU cannot run without KVM)`,
          fix: `${APT} --reinstall qemu-system-x86`,
        }),
  });

  const missingFirmware = QEMU_FIRMWARE.filter((n) => !facts.qemuFiles[n]);
  add({
    id: "qemu-firmware",
    title: "QEMU firmware",
    required: true,
    ...(missingFirmware.length === 0
      ? { status: "ok", detail: QEMU_FIRMWARE.join(", ") }
      : {
          status: "missing",
          detail: `not in QEMU's firmware path (qemu-system-x86_64 -L help): ${missingFirmware.join(", ")}`,
          fix: `${APT} ${packagesFor(missingFirmware, FIRMWARE_PACKAGE)}`,
        }),
  });

  const u = facts.uffdWp;
  add({
    id: "uffd-wp",
    title: "userfaultfd write-protect on shared memory",
    required: true,
    ...(u.ok === true
      ? { status: "ok", detail: u.detail }
      : u.ok === "unknown"
        ? { status: "warn", detail: u.detail, fix: "npm run build -w @vpc/dirty-log, then vpc doctor again" }
        : {
            status: "missing",
            detail: u.detail,
            fix: "run as root (or sysctl -w vm.unprivileged_userfaultfd=1) on Linux ≥ 5.19 with CONFIG_USERFAULTFD and CONFIG_PTE_MARKER_UFFD_WP",
          }),
  });

  add(
    probeCheck("tun", "/dev/net/tun (tap devices for qemu hosts)", facts.tun, "modprobe tun (run as root)"),
  );
  add(
    probeCheck(
      "netns",
      "network namespaces (netns hosts)",
      facts.netns,
      facts.commands.ip ? "run as root (ip netns add needs CAP_SYS_ADMIN)" : `${APT} iproute2`,
    ),
  );
  add(probeCheck("bridge", "Linux bridge (the fabric)", facts.bridge, "modprobe bridge (run as root)"));

  const k = facts.kvm;
  add({
    id: "kvm",
    title: "KVM",
    required: false,
    status: "ok",
    detail: !k.devKvm
      ? "no usable /dev/kvm: TCG"
      : k.cached
        ? `${k.cached.kvm ? "KVM" : "TCG"} (probe boot ${k.cached.probedAt}: ${k.cached.detail})`
        : '/dev/kvm present but not probed yet: TCG until a VM starts with accel "auto" (a probe boot decides)',
  });

  if (facts.shm === null) {
    add({
      id: "shm",
      title: "free /dev/shm",
      required: true,
      status: "missing",
      detail: "/dev/shm is not mounted",
      fix: "mount -t tmpfs -o size=8G tmpfs /dev/shm",
    });
  } else {
    const ok = facts.shm.freeBytes >= policy.minShmBytes;
    add({
      id: "shm",
      title: "free /dev/shm",
      required: true,
      status: ok ? "ok" : "missing",
      detail: `${gib(facts.shm.freeBytes)} free of ${gib(facts.shm.totalBytes)}${ok ? "" : `; needs ≥ ${gib(policy.minShmBytes)}`}`,
      ...(ok
        ? {}
        : {
            fix: `mount -o remount,size=${Math.ceil((facts.shm.totalBytes - facts.shm.freeBytes + policy.minShmBytes) / 1024 ** 3)}G /dev/shm`,
          }),
    });
  }

  const groups: [string, string, readonly string[]][] = [
    ["mpich", "MPICH (mpicc, mpiexec)", ["mpicc", "mpiexec"]],
    [
      "dropbear",
      "dropbear (SSH in guests and qemu hosts)",
      ["dropbear", "dropbearkey", "dropbearconvert", "dbclient"],
    ],
    ["iproute2", "iproute2 (ip)", ["ip"]],
    ["image-tools", "image build tools", ["busybox", "cpio", "zstd", "depmod", "gcc", "make"]],
  ];
  for (const [id, title, names] of groups) {
    const missing = names.filter((n) => !facts.commands[n]);
    add({
      id,
      title,
      required: true,
      ...(missing.length === 0
        ? { status: "ok", detail: names.map((n) => facts.commands[n]).join(", ") }
        : {
            status: "missing",
            detail: `not on PATH: ${missing.join(", ")}`,
            fix: `${APT} ${packagesFor(missing, COMMAND_PACKAGES)}`,
          }),
    });
  }

  add(imageCheck("guest-image", "guest image", facts.images.guest, "make guest"));
  add(
    imageCheck(
      "host-image",
      "host image (qemu hosts)",
      facts.images.host,
      "bash images/host/build.sh build/images/host",
    ),
  );

  return { ok: checks.every((c) => !c.required || c.status !== "missing"), checks };
}

function probeCheck(id: string, title: string, p: ProbeOutcome, fix: string): DoctorCheck {
  return p.ok
    ? { id, title, required: true, status: "ok", detail: p.detail }
    : { id, title, required: true, status: "missing", detail: p.detail, fix };
}

/** Images are built on demand (`make testbed up` builds them), so a missing one only warns. */
function imageCheck(id: string, title: string, p: ProbeOutcome, fix: string): DoctorCheck {
  return p.ok
    ? { id, title, required: false, status: "ok", detail: p.detail }
    : { id, title, required: false, status: "warn", detail: p.detail, fix };
}

/** The report as aligned text lines: one per check, with the fix under each missing piece. */
export function formatDoctorReport(report: DoctorReport): string {
  const width = Math.max(...report.checks.map((c) => c.title.length));
  const mark: Record<CheckStatus, string> = { ok: "ok  ", missing: "MISS", warn: "warn" };
  const lines: string[] = [];
  for (const c of report.checks) {
    lines.push(`[${mark[c.status]}] ${c.title.padEnd(width)}  ${c.detail}`);
    if (c.status !== "ok" && c.fix) lines.push(`       ${" ".repeat(width)}  fix: ${c.fix}`);
  }
  const missing = report.checks.filter((c) => c.required && c.status === "missing").length;
  lines.push("", report.ok ? "All required pieces are present." : `${missing} required piece(s) missing.`);
  return lines.join("\n");
}
