/**
 * Choosing between TCG and KVM. `/dev/kvm` can exist, open, and still hang a guest (a
 * `kvm_pvm` host, FIELD-NOTES §1), so "auto" uses KVM only when a probe boot of the real guest
 * reached its ready marker. The probe result is cached per machine, QEMU and guest kernel.
 */
import { execFile } from "node:child_process";
import { constants } from "node:fs";
import { access, mkdir, readFile } from "node:fs/promises";
import { homedir, hostname, release } from "node:os";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import type { GuestImage } from "./guest-image.js";
import type { AccelOption } from "./internal/config.js";
import { writeFileDurable } from "./internal/durable-write.js";
import type { Accel } from "./internal/qemu-args.js";
import type { Logger } from "./logger.js";

export interface ProbeRecord {
  readonly key: string;
  readonly kvm: boolean;
  readonly detail: string;
  readonly probedAt: string;
}

export interface AccelContext {
  readonly image: GuestImage;
  readonly qemuBinary: string;
  readonly logger: Logger;
  /** Where probe results are kept; default `$XDG_CACHE_HOME/vpc/accel-probe.json`. */
  readonly cacheFile?: string;
  /** Boots the guest under KVM and reports whether it got ready (`kvmProbeBoot` of vm.ts). */
  readonly probeBoot: (timeoutMs: number) => Promise<{ ready: boolean; detail: string }>;
  /** The KVM device; without read-write access to it there is nothing to probe. Default /dev/kvm. */
  readonly kvmDevice?: string;
  readonly probeTimeoutMs?: number;
}

const PROBE_TIMEOUT_MS = 20_000;

export function defaultProbeCacheFile(): string {
  const base = process.env.XDG_CACHE_HOME || join(homedir(), ".cache");
  return join(base, "vpc", "accel-probe.json");
}

/** The cache key: a probe answer holds only for the same host kernel, QEMU and guest kernel. */
export function probeKey(parts: {
  host: string;
  hostKernel: string;
  qemuVersion: string;
  guestKernel: string;
}): string {
  return [parts.host, parts.hostKernel, parts.qemuVersion, parts.guestKernel].join("|");
}

export async function resolveAccel(option: AccelOption, ctx: AccelContext): Promise<Accel> {
  if (option !== "auto") return option;
  const record = await probeKvm(ctx);
  ctx.logger.log("info", "accel.resolved", { accel: record.kvm ? "kvm" : "tcg", detail: record.detail });
  return record.kvm ? "kvm" : "tcg";
}

/** Returns the cached probe answer, or probes (booting the guest under KVM) and caches it. */
export async function probeKvm(ctx: AccelContext): Promise<ProbeRecord> {
  const device = ctx.kvmDevice ?? "/dev/kvm";
  const usable = await access(device, constants.R_OK | constants.W_OK).then(
    () => true,
    () => false,
  );
  if (!usable)
    return { key: "", kvm: false, detail: `${device} not usable`, probedAt: new Date().toISOString() };
  const key = probeKey({
    host: hostname(),
    hostKernel: release(),
    qemuVersion: await qemuVersion(ctx.qemuBinary),
    guestKernel: ctx.image.kernelRelease,
  });
  const cacheFile = ctx.cacheFile ?? defaultProbeCacheFile();
  const cache = await readCache(cacheFile);
  const hit = cache[key];
  if (hit) return hit;

  const result = await ctx.probeBoot(ctx.probeTimeoutMs ?? PROBE_TIMEOUT_MS);
  const record: ProbeRecord = {
    key,
    kvm: result.ready,
    detail: result.detail,
    probedAt: new Date().toISOString(),
  };
  ctx.logger.log("info", "accel.probed", { ...record });
  cache[key] = record;
  await mkdir(dirname(cacheFile), { recursive: true });
  await writeFileDurable(cacheFile, `${JSON.stringify(cache, null, 2)}\n`);
  return record;
}

async function readCache(file: string): Promise<Record<string, ProbeRecord>> {
  try {
    const parsed = JSON.parse(await readFile(file, "utf8")) as unknown;
    return typeof parsed === "object" && parsed !== null ? (parsed as Record<string, ProbeRecord>) : {};
  } catch {
    return {};
  }
}

async function qemuVersion(binary: string): Promise<string> {
  try {
    const { stdout } = await promisify(execFile)(binary, ["--version"]);
    return stdout.split("\n", 1)[0] ?? "unknown";
  } catch {
    return "unknown";
  }
}
