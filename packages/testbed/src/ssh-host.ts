/**
 * `ssh` hosts, the pure half: what the controller asks an existing Linux machine (one shell
 * script, `key=value` lines), the verdicts and fixes from its answers, where the agent comes from
 * (reuse or copy), and the tar framing of a copy. Host-key pinning is @vpc/cluster's (host-key.ts).
 * The I/O half (connecting, running the probe, streaming the copy) is ssh-host-remote.ts.
 */
import { createHash } from "node:crypto";
import { posix } from "node:path";
import { type DoctorCheck, parseQemuVersion } from "./doctor.js";

/**
 * Printed by the probe, one `key=value` per line; every command may be missing, so each value
 * may be empty. POSIX sh only (the host's login shell may be dash or busybox).
 */
export const SSH_PROBE_SCRIPT = [
  'echo "os=$(uname -s)"',
  'echo "arch=$(uname -m)"',
  'echo "uid=$(id -u)"',
  'echo "node=$(node --version 2>/dev/null)"',
  'echo "qemu=$(qemu-system-x86_64 --version 2>/dev/null | head -n 1)"',
  // `-accel help` lists the accelerators this QEMU build can load (tcg is a module on Debian).
  'echo "accels=$(qemu-system-x86_64 -accel help 2>/dev/null | tail -n +2 | tr "\\n" " ")"',
  'fw=; for d in $(qemu-system-x86_64 -L help 2>/dev/null); do [ -f "$d/bios-256k.bin" ] && fw="$d"; done; echo "firmware=$fw"',
  "echo \"shm=$(df -Pk /dev/shm 2>/dev/null | awk 'NR==2{print $4}')\"",
  "if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then echo kvm=rw; elif [ -e /dev/kvm ]; then echo kvm=noaccess; else echo kvm=none; fi",
  // The sysctl exists exactly when the kernel has CONFIG_USERFAULTFD.
  'echo "uffd=$(cat /proc/sys/vm/unprivileged_userfaultfd 2>/dev/null)"',
  'echo "glibc=$(getconf GNU_LIBC_VERSION 2>/dev/null)"',
  'for c in tar sha256sum unshare; do echo "cmd_$c=$(command -v $c)"; done',
].join("\n");

export interface SshHostFacts {
  /** `uname -s`, e.g. Linux. */
  readonly os: string;
  readonly arch: string;
  readonly uid: number | null;
  /** `node --version`, empty when node is not on the login PATH. */
  readonly node: string;
  /** First line of `qemu-system-x86_64 --version`, empty when it does not run. */
  readonly qemu: string;
  readonly accels: readonly string[];
  /** Firmware directory holding bios-256k.bin, empty when none. */
  readonly firmware: string;
  /** Free bytes of /dev/shm, null when it is not mounted. */
  readonly shmFreeBytes: number | null;
  readonly kvm: "rw" | "noaccess" | "none";
  /** vm.unprivileged_userfaultfd, null when the kernel has no userfaultfd. */
  readonly uffdSysctl: number | null;
  /** e.g. [2, 36]; null when not glibc. */
  readonly glibc: readonly [number, number] | null;
  /** Found commands by name (tar, sha256sum, unshare). */
  readonly commands: Readonly<Record<string, boolean>>;
}

/** Reads the probe's output; unknown keys are ignored so older controllers read newer probes. */
export function parseSshProbe(text: string): SshHostFacts {
  const kv = new Map<string, string>();
  for (const line of text.split("\n")) {
    const eq = line.indexOf("=");
    if (eq > 0) kv.set(line.slice(0, eq), line.slice(eq + 1).trim());
  }
  const get = (k: string): string => kv.get(k) ?? "";
  const num = (k: string): number | null => (/^\d+$/.test(get(k)) ? Number(get(k)) : null);
  const shmKiB = num("shm");
  const glibc = /(\d+)\.(\d+)/.exec(get("glibc"));
  const kvm = get("kvm");
  const commands: Record<string, boolean> = {};
  for (const [k, v] of kv) if (k.startsWith("cmd_")) commands[k.slice(4)] = v.length > 0;
  return {
    os: get("os"),
    arch: get("arch"),
    uid: num("uid"),
    node: get("node"),
    qemu: get("qemu"),
    accels: get("accels").split(/\s+/).filter(Boolean),
    firmware: get("firmware"),
    shmFreeBytes: shmKiB === null ? null : shmKiB * 1024,
    kvm: kvm === "rw" || kvm === "noaccess" ? kvm : "none",
    uffdSysctl: num("uffd"),
    glibc: glibc ? [Number(glibc[1]), Number(glibc[2])] : null,
    commands,
  };
}

export interface SshHostNeeds {
  /** RAM of the host's VMs (their RAM files live in /dev/shm). */
  readonly guestMiB: number;
  /** The agent will be copied (tar must be there, and the copied natives must load). */
  readonly copying: boolean;
  /** This machine's glibc (the copied native code is built against it). */
  readonly localGlibc: readonly [number, number] | null;
  readonly minNodeMajor?: number;
  readonly minQemu?: readonly [number, number];
}

const APT = "apt-get install -y";

function older(a: readonly number[], b: readonly number[]): boolean {
  return a[0]! !== b[0]! ? a[0]! < b[0]! : a[1]! < b[1]!;
}

/**
 * Every prerequisite of an `ssh` host, in the order to fix them; `required` ones that are
 * `missing` stop `up` before anything is created. Fixes are for Debian/Ubuntu.
 */
export function evaluateSshHost(facts: SshHostFacts, needs: SshHostNeeds): DoctorCheck[] {
  const checks: DoctorCheck[] = [];
  const check = (id: string, title: string, ok: boolean, detail: string, fix: string, required = true) =>
    checks.push({
      id,
      title,
      required,
      status: ok ? "ok" : required ? "missing" : "warn",
      detail,
      ...(ok ? {} : { fix }),
    });

  check(
    "os",
    "Linux on x86_64",
    facts.os === "Linux" && facts.arch === "x86_64",
    `${facts.os || "?"} ${facts.arch || "?"}`,
    "use a Linux x86_64 machine (the agent's native code and the guest image are x86_64 Linux)",
  );
  const minNode = needs.minNodeMajor ?? 20;
  const nodeMajor = Number(/^v(\d+)/.exec(facts.node)?.[1] ?? 0);
  check(
    "node",
    "Node.js",
    nodeMajor >= minNode,
    facts.node === ""
      ? "node is not on the login PATH"
      : `${facts.node}${nodeMajor >= minNode ? "" : `; needs ≥ ${minNode}`}`,
    `install Node.js ≥ ${minNode} on the host so that \`node\` is on PATH for non-interactive ssh (e.g. ${APT} nodejs from NodeSource)`,
  );
  const minQemu = needs.minQemu ?? [7, 2];
  const qv = facts.qemu === "" ? null : parseQemuVersion(facts.qemu);
  check(
    "qemu",
    "QEMU (qemu-system-x86_64)",
    qv !== null && !older(qv, minQemu),
    qv === null
      ? "qemu-system-x86_64 does not run"
      : `${qv.join(".")}${older(qv, minQemu) ? `; needs ≥ ${minQemu.join(".")}` : ""}`,
    `${APT} qemu-system-x86`,
  );
  check(
    "qemu-firmware",
    "QEMU firmware",
    facts.firmware !== "",
    facts.firmware === "" ? "no bios-256k.bin in QEMU's firmware path" : facts.firmware,
    `${APT} seabios qemu-system-data`,
  );
  const tcg = facts.accels.includes("tcg");
  check(
    "accel",
    "accelerator (/dev/kvm or TCG)",
    tcg || facts.kvm === "rw",
    `kvm: ${facts.kvm === "rw" ? "usable" : facts.kvm === "noaccess" ? "present, not accessible" : "absent"}; tcg: ${tcg ? "yes" : "no"}` +
      (facts.kvm === "rw" ? " (KVM is used only after a probe boot proves it works)" : ""),
    facts.kvm === "noaccess"
      ? "add the ssh user to group kvm (usermod -aG kvm USER) or install the TCG module"
      : `${APT} --reinstall qemu-system-x86 (its TCG module)`,
  );
  const shmNeed = needs.guestMiB * 1024 * 1024;
  check(
    "shm",
    "free /dev/shm",
    facts.shmFreeBytes !== null && facts.shmFreeBytes >= shmNeed,
    facts.shmFreeBytes === null
      ? "/dev/shm is not mounted"
      : `${mib(facts.shmFreeBytes)} free, the host's VMs need ${needs.guestMiB} MiB`,
    facts.shmFreeBytes === null
      ? `mount -t tmpfs -o size=${Math.ceil(needs.guestMiB / 1024) + 1}G tmpfs /dev/shm`
      : `mount -o remount,size=${Math.ceil((needs.guestMiB + 1024) / 1024)}G /dev/shm (or free space in it)`,
  );
  const root = facts.uid === 0;
  check(
    "userfaultfd",
    "userfaultfd",
    facts.uffdSysctl !== null && (root || facts.uffdSysctl === 1),
    facts.uffdSysctl === null
      ? "the kernel has no userfaultfd (no /proc/sys/vm/unprivileged_userfaultfd)"
      : root
        ? "available (root)"
        : `vm.unprivileged_userfaultfd=${facts.uffdSysctl}, user is not root`,
    facts.uffdSysctl === null
      ? "use a kernel built with CONFIG_USERFAULTFD (any distribution kernel ≥ 5.7 has it)"
      : "sysctl -w vm.unprivileged_userfaultfd=1 (or log in as root)",
  );
  if (needs.copying) {
    check(
      "tar",
      "tar (receives the agent copy)",
      facts.commands.tar === true,
      facts.commands.tar ? "found" : "not on PATH",
      `${APT} tar`,
    );
    const glibcOk =
      facts.glibc !== null && (needs.localGlibc === null || !older(facts.glibc, needs.localGlibc));
    check(
      "glibc",
      "glibc for the copied native code",
      glibcOk,
      facts.glibc === null
        ? "not a glibc system"
        : `${facts.glibc.join(".")}${needs.localGlibc ? ` (built here against ${needs.localGlibc.join(".")})` : ""}`,
      "build and install the project on the host itself (npm ci && npm run build) and set agentModule",
    );
  }
  return checks;
}

function mib(bytes: number): string {
  return `${Math.floor(bytes / 1024 ** 2)} MiB`;
}

/** Human lines for the checks that stop `up`: what is missing and the command that fixes it. */
export function formatMissing(host: string, checks: readonly DoctorCheck[]): string {
  return checks
    .filter((c) => c.status === "missing")
    .map((c) => `host ${host}: ${c.title}: ${c.detail}${c.fix ? ` — fix: ${c.fix}` : ""}`)
    .join("\n");
}

/** One npm package of the agent's runtime closure, as found on this machine. */
export interface AgentPackage {
  readonly name: string;
  /** Real directory (workspace symlinks resolved). */
  readonly dir: string;
  /** Files to copy, relative to `dir` (package.json first). */
  readonly files: readonly string[];
}

export interface CopyEntry {
  /** Absolute path on this machine. */
  readonly src: string;
  /** Path relative to the host's `<dir>/agent`. */
  readonly dest: string;
}

export interface AgentCopyPlan {
  readonly entries: readonly CopyEntry[];
  /** Relative to `<dir>/agent`: the module the agent is started from and the guest image dir. */
  readonly agentModule: string;
  readonly imageDir: string;
}

/** Where the copied guest image lands under `<dir>/agent` (the agent is told, not left to search). */
const COPIED_IMAGE_DIR = "images/guest";

/**
 * The copy: every package flat under `node_modules/<name>/` (Node resolves bare imports by
 * walking up to it), the guest image under `images/guest/`. Two packages of one name in the
 * closure cannot share the flat layout and are refused rather than guessed.
 */
export function planAgentCopy(
  packages: readonly AgentPackage[],
  image: { readonly dir: string; readonly files: readonly string[] },
  agentPackage = "@vpc/cluster",
): AgentCopyPlan {
  const seen = new Map<string, string>();
  const entries: CopyEntry[] = [];
  for (const p of packages) {
    const other = seen.get(p.name);
    if (other !== undefined) {
      if (other === p.dir) continue;
      throw new Error(`two copies of ${p.name} in the agent's closure (${other}, ${p.dir}); cannot flatten`);
    }
    seen.set(p.name, p.dir);
    for (const f of p.files)
      entries.push({ src: posix.join(p.dir, f), dest: posix.join("node_modules", p.name, f) });
  }
  if (!seen.has(agentPackage)) throw new Error(`${agentPackage} is not in the agent's closure`);
  for (const f of image.files)
    entries.push({ src: posix.join(image.dir, f), dest: posix.join(COPIED_IMAGE_DIR, f) });
  return {
    entries,
    agentModule: posix.join("node_modules", agentPackage, "dist", "index.js"),
    imageDir: COPIED_IMAGE_DIR,
  };
}

/** Identifies a copy by what it holds: destination paths and their contents' SHA-256. */
export function agentBuildId(hashes: readonly { readonly dest: string; readonly sha256: string }[]): string {
  const h = createHash("sha256");
  for (const e of [...hashes].sort((a, b) => (a.dest < b.dest ? -1 : a.dest > b.dest ? 1 : 0)))
    h.update(`${e.dest}\0${e.sha256}\n`);
  return h.digest("hex").slice(0, 32);
}

/** `sha256sum` output lines (`<hex>  <path>`) → path → hex. */
export function parseSha256sum(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split("\n")) {
    const m = /^([0-9a-f]{64}) [ *](.+)$/.exec(line);
    if (m) out.set(m[2]!, m[1]!);
  }
  return out;
}

export type AgentSource =
  /** `agentModule` of the config, present on the host. */
  | { readonly how: "configured"; readonly module: string }
  /** This machine's build at the same paths on the host (a shared filesystem, or the same install). */
  | { readonly how: "same-build"; readonly module: string; readonly imageDir: string }
  /** A copy made earlier into `<dir>/agent` with the same build id. */
  | { readonly how: "copied-before"; readonly module: string; readonly imageDir: string }
  | { readonly how: "copy"; readonly module: string; readonly imageDir: string };

/**
 * Reuse before copy. `remoteSums` are the host's SHA-256 of this machine's file paths (a file
 * missing there is simply absent); `remoteBuildId` is `<dir>/agent/BUILD` on the host.
 */
export function chooseAgentSource(o: {
  readonly configuredModule: string | undefined;
  readonly configuredModulePresent: boolean;
  readonly localModule: string;
  readonly localImageDir: string;
  readonly localSums: ReadonlyMap<string, string>;
  readonly remoteSums: ReadonlyMap<string, string>;
  readonly buildId: string;
  readonly remoteBuildId: string;
  readonly agentDir: string;
  readonly plan: AgentCopyPlan;
}): AgentSource {
  if (o.configuredModule !== undefined && o.configuredModulePresent)
    return { how: "configured", module: o.configuredModule };
  if (o.localSums.size > 0 && [...o.localSums].every(([path, sum]) => o.remoteSums.get(path) === sum))
    return { how: "same-build", module: o.localModule, imageDir: o.localImageDir };
  const copied = {
    module: posix.join(o.agentDir, o.plan.agentModule),
    imageDir: posix.join(o.agentDir, o.plan.imageDir),
  };
  return o.remoteBuildId === o.buildId ? { how: "copied-before", ...copied } : { how: "copy", ...copied };
}

const BLOCK = 512;

function octal(n: number, width: number): string {
  return `${n.toString(8).padStart(width - 1, "0")}\0`;
}

/**
 * A POSIX ustar header for a regular file or directory. Names over 100 bytes are split at a
 * `/` into prefix (≤ 155) and name (≤ 100), as ustar allows; longer ones are refused.
 */
export function tarHeader(
  path: string,
  size: number,
  mode: number,
  mtimeSec: number,
  type: "file" | "dir",
): Buffer {
  const h = Buffer.alloc(BLOCK, 0);
  let name = type === "dir" && !path.endsWith("/") ? `${path}/` : path;
  let prefix = "";
  if (Buffer.byteLength(name) > 100) {
    let split = -1;
    for (let i = name.indexOf("/"); i > 0 && split < 0; i = name.indexOf("/", i + 1)) {
      const rest = name.slice(i + 1);
      if (
        rest !== "" &&
        rest !== "/" &&
        Buffer.byteLength(rest) <= 100 &&
        Buffer.byteLength(name.slice(0, i)) <= 155
      )
        split = i;
    }
    if (split < 0) throw new Error(`path too long for ustar: ${path}`);
    prefix = name.slice(0, split);
    name = name.slice(split + 1);
  }
  h.write(name, 0, 100, "utf8");
  h.write(octal(mode & 0o7777, 8), 100, "ascii");
  h.write(octal(0, 8), 108, "ascii");
  h.write(octal(0, 8), 116, "ascii");
  h.write(octal(type === "dir" ? 0 : size, 12), 124, "ascii");
  h.write(octal(Math.floor(mtimeSec), 12), 136, "ascii");
  h.write("        ", 148, "ascii");
  h.write(type === "dir" ? "5" : "0", 156, "ascii");
  h.write("ustar\0", 257, "ascii");
  h.write("00", 263, "ascii");
  h.write(prefix, 345, 155, "utf8");
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "ascii");
  return h;
}

/** Zero bytes that pad `size` bytes of file data to a whole block. */
export function tarPadding(size: number): Buffer {
  return Buffer.alloc((BLOCK - (size % BLOCK)) % BLOCK, 0);
}

/** Two zero blocks end an archive. */
export const TAR_END = Buffer.alloc(2 * BLOCK, 0);
