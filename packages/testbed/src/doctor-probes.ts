/**
 * `vpc doctor`, the I/O half: gathers `DoctorFacts` from this machine. Every probe cleans up
 * what it made (a uniquely named namespace and bridge, the dirty-log harness and its files),
 * also when it fails. KVM is never tried here: the cached probe-boot answer is reported.
 */
import { execFile, spawn } from "node:child_process";
import { constants, existsSync } from "node:fs";
import { access, readFile, statfs } from "node:fs/promises";
import { hostname, release } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { promisify } from "node:util";
import {
  defaultGuestImageDir,
  defaultProbeCacheFile,
  loadGuestImage,
  type ProbeRecord,
  probeKey,
} from "@vpc/controller";
import { agentEnv, createAgentDir, DirtyLogClient, harnessPath } from "@vpc/dirty-log";
import {
  COMMAND_PACKAGES,
  DEFAULT_DOCTOR_POLICY,
  type DoctorFacts,
  type DoctorPolicy,
  type DoctorReport,
  evaluateDoctor,
  type ProbeOutcome,
  QEMU_FIRMWARE,
  QEMU_MODULES,
} from "./doctor.js";
import { defaultHostImageDir, loadHostImage } from "./qemu-host-image.js";

const run = promisify(execFile);
const PROBE_TIMEOUT_MS = 10_000;
/** userfaultfd feature bit for kernel-resolved write-protect (Linux ≥ 6.7). */
const UFFD_FEATURE_WP_ASYNC = 1 << 15;

export interface DoctorOptions {
  readonly qemuBinary?: string;
  readonly guestImageDir?: string;
  readonly hostImageDir?: string;
  readonly policy?: DoctorPolicy;
}

/** Probes this machine and evaluates the checks. */
export async function runDoctor(options: DoctorOptions = {}): Promise<DoctorReport> {
  return evaluateDoctor(await gatherDoctorFacts(options), options.policy ?? DEFAULT_DOCTOR_POLICY);
}

export async function gatherDoctorFacts(options: DoctorOptions = {}): Promise<DoctorFacts> {
  const qemuBinary = options.qemuBinary ?? "qemu-system-x86_64";
  const commands = Object.fromEntries(Object.keys(COMMAND_PACKAGES).map((n) => [n, which(n)]));
  const qemuVersion = await firstLine(qemuBinary, ["--version"]);
  const qemuPath = which(qemuBinary);
  // Independent and cheap except the uffd probe; netns and bridge touch the kernel only briefly.
  const [qemuFiles, uffdWp, tun, netns, bridge, shm, guest, host] = await Promise.all([
    findQemuFiles(qemuBinary, qemuPath),
    probeUffdWp(),
    probeTun(),
    probeNetns(),
    probeBridge(),
    probeShm(),
    loadGuestImage(options.guestImageDir ?? defaultGuestImageDir()).then(
      (i) => ({ ok: true, detail: `${i.dir} (kernel ${i.kernelRelease}, ${i.npb.length} NPB kernels)` }),
      (e: Error) => ({ ok: false, detail: e.message }),
    ),
    loadHostImage(options.hostImageDir ?? defaultHostImageDir()).then(
      (i) => ({ ok: true, detail: `${i.dir} (kernel ${i.kernelRelease})` }),
      (e: Error) => ({ ok: false, detail: e.message }),
    ),
  ]);
  const kvm = await cachedKvmProbe(qemuVersion, options.guestImageDir);
  return {
    node: { version: process.version },
    qemuVersion,
    qemuFiles,
    uffdWp,
    tun,
    netns,
    bridge,
    kvm,
    shm,
    commands,
    images: { guest, host },
  };
}

function which(name: string): string | null {
  if (name.includes("/")) return existsSync(name) ? name : null;
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (dir && existsSync(join(dir, name))) return join(dir, name);
  }
  return null;
}

async function firstLine(binary: string, args: string[]): Promise<string | null> {
  try {
    const { stdout } = await run(binary, args, { timeout: PROBE_TIMEOUT_MS });
    return stdout.split("\n", 1)[0] ?? "";
  } catch {
    return null;
  }
}

/**
 * Modules: `$QEMU_MODULE_DIR`, else the usual directories next to the binary. Firmware: the
 * directories QEMU itself names with `-L help`.
 */
async function findQemuFiles(
  qemuBinary: string,
  qemuPath: string | null,
): Promise<Record<string, string | null>> {
  const prefix = qemuPath ? dirname(dirname(qemuPath)) : "/usr";
  const moduleDirs = process.env.QEMU_MODULE_DIR
    ? [process.env.QEMU_MODULE_DIR]
    : ["lib/x86_64-linux-gnu/qemu", "lib64/qemu", "lib/qemu"].map((d) => join(prefix, d));
  let firmwareDirs: string[] = [];
  try {
    const { stdout } = await run(qemuBinary, ["-L", "help"], { timeout: PROBE_TIMEOUT_MS });
    firmwareDirs = stdout.split("\n").filter((l) => l.startsWith("/"));
  } catch {
    // QEMU missing: every file is reported missing and the qemu check carries the fix.
  }
  const find = (name: string, dirs: readonly string[]) =>
    dirs.map((d) => join(d, name)).find((p) => existsSync(p)) ?? null;
  return Object.fromEntries([
    ...QEMU_MODULES.map((n) => [n, find(n, moduleDirs)]),
    ...QEMU_FIRMWARE.map((n) => [n, find(n, firmwareDirs)]),
  ]);
}

/**
 * Runs the dirty-log agent in its QEMU stand-in on a 64-page shared file and attaches in sync
 * mode: the same userfaultfd write-protect registration a checkpointed VM needs.
 */
async function probeUffdWp(): Promise<DoctorFacts["uffdWp"]> {
  const exe = harnessPath();
  if (!existsSync(exe)) return { ok: "unknown", detail: `dirty-log agent not built (${exe} missing)` };
  const dir = await createAgentDir();
  const child = spawn(exe, [join(dir.dir, "ram"), "64"], {
    env: { ...process.env, ...agentEnv(dir.socketPath, { exe }) },
    stdio: ["pipe", "pipe", "pipe"],
  });
  child.stdin.on("error", () => undefined);
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  let client: DirtyLogClient | undefined;
  try {
    const first = await new Promise<string>((resolve, reject) => {
      const lines = createInterface({ input: child.stdout });
      lines.once("line", resolve);
      child.once("exit", (code) => reject(new Error(`harness exited (${code}): ${stderr.trim()}`)));
      child.once("error", reject);
    });
    if (!first.startsWith("ready")) throw new Error(`harness: ${first}`);
    client = await DirtyLogClient.connect(dir.socketPath, { timeoutMs: PROBE_TIMEOUT_MS });
    const info = await client.attach({ memPath: join(dir.dir, "ram"), mode: "sync", stagingSlots: 16 });
    const asyncWp = (info.availableFeatures & UFFD_FEATURE_WP_ASYNC) !== 0;
    return {
      ok: true,
      detail: `sync write-protect works; kernel-resolved (WP_ASYNC) tracking ${asyncWp ? "available" : "not available (Linux < 6.7)"}`,
    };
  } catch (e) {
    return { ok: false, detail: e instanceof Error ? e.message : String(e) };
  } finally {
    await client?.close().catch(() => undefined);
    child.kill("SIGKILL");
    await exited;
    await dir.remove();
  }
}

async function probeTun(): Promise<ProbeOutcome> {
  try {
    await access("/dev/net/tun", constants.R_OK | constants.W_OK);
    return { ok: true, detail: "/dev/net/tun is usable" };
  } catch (e) {
    return { ok: false, detail: `/dev/net/tun: ${(e as NodeJS.ErrnoException).code ?? String(e)}` };
  }
}

/** A name no other probe or testbed uses: pid plus random, within the 15-byte IFNAMSIZ. */
function probeName(prefix: string): string {
  return `${prefix}${process.pid.toString(36)}${Math.floor(Math.random() * 36 ** 3).toString(36)}`.slice(
    0,
    15,
  );
}

async function probeNetns(): Promise<ProbeOutcome> {
  const name = probeName("vpcdoc-");
  try {
    await run("ip", ["netns", "add", name], { timeout: PROBE_TIMEOUT_MS });
  } catch (e) {
    return { ok: false, detail: `ip netns add failed: ${stderrOf(e)}` };
  }
  try {
    await run("ip", ["netns", "exec", name, "ip", "link", "set", "lo", "up"], { timeout: PROBE_TIMEOUT_MS });
    return { ok: true, detail: "ip netns add/exec/del work" };
  } catch (e) {
    return { ok: false, detail: `ip netns exec failed: ${stderrOf(e)}` };
  } finally {
    await run("ip", ["netns", "del", name]).catch(() => undefined);
  }
}

async function probeBridge(): Promise<ProbeOutcome> {
  const name = probeName("vpcdb");
  try {
    await run("ip", ["link", "add", name, "type", "bridge"], { timeout: PROBE_TIMEOUT_MS });
  } catch (e) {
    return { ok: false, detail: `ip link add type bridge failed: ${stderrOf(e)}` };
  }
  await run("ip", ["link", "del", name]).catch(() => undefined);
  return { ok: true, detail: "ip link add/del type bridge work" };
}

async function probeShm(): Promise<DoctorFacts["shm"]> {
  try {
    const s = await statfs("/dev/shm");
    return { freeBytes: s.bavail * s.bsize, totalBytes: s.blocks * s.bsize };
  } catch {
    return null;
  }
}

/** The probe-boot answer `resolveAccel("auto")` would use, read from its cache only. */
async function cachedKvmProbe(
  qemuVersion: string | null,
  guestImageDir: string | undefined,
): Promise<DoctorFacts["kvm"]> {
  const devKvm = await access("/dev/kvm", constants.R_OK | constants.W_OK).then(
    () => true,
    () => false,
  );
  if (!devKvm) return { devKvm, cached: null };
  let cache: Record<string, ProbeRecord>;
  let guestKernel: string;
  try {
    guestKernel = (await loadGuestImage(guestImageDir ?? defaultGuestImageDir())).kernelRelease;
    cache = JSON.parse(await readFile(defaultProbeCacheFile(), "utf8")) as Record<string, ProbeRecord>;
  } catch {
    return { devKvm, cached: null };
  }
  const key = probeKey({
    host: hostname(),
    hostKernel: release(),
    qemuVersion: qemuVersion ?? "unknown",
    guestKernel,
  });
  const hit = cache[key];
  return { devKvm, cached: hit ? { kvm: hit.kvm, detail: hit.detail, probedAt: hit.probedAt } : null };
}

function stderrOf(e: unknown): string {
  const s = (e as { stderr?: unknown }).stderr;
  return (typeof s === "string" && s.trim()) || (e instanceof Error ? e.message : String(e));
}
