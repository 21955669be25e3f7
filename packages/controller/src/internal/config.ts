/** Validation and defaults for VM options. Pure. */
import { ConfigError } from "../errors.js";
import { type DataNic, deriveMac, type GuestParams, netdevId } from "./qemu-args.js";

export type AccelOption = "tcg" | "kvm" | "auto";

export interface DataNicOption {
  /** A raw `-netdev` spec, e.g. `stream,id=data0,server=off,addr.type=unix,addr.path=/run/sw.sock`. */
  readonly netdev: string;
  readonly mac?: string;
}

/** The parts of a VM's configuration that define its hardware and guest; checked by `validateVmConfig`. */
export interface VmConfigInput {
  readonly name: string;
  readonly memMiB?: number;
  readonly cpus?: number;
  readonly accel?: AccelOption;
  readonly guest?: Partial<GuestParams>;
  readonly dataNics?: readonly (string | DataNicOption)[];
  readonly env?: Readonly<Record<string, string>>;
  readonly preload?: string;
  readonly bootTimeoutMs?: number;
  readonly extraQemuArgs?: readonly string[];
}

export interface VmConfig {
  readonly name: string;
  readonly memMiB: number;
  readonly cpus: number;
  readonly accel: AccelOption;
  readonly guest: GuestParams;
  readonly dataNics: readonly DataNic[];
  readonly env: Readonly<Record<string, string>>;
  readonly preload: string | undefined;
  readonly bootTimeoutMs: number;
  readonly extraQemuArgs: readonly string[];
}

export const DEFAULT_MEM_MIB = 256;
export const DEFAULT_BOOT_TIMEOUT_MS = 120_000;

const NAME = /^[a-z0-9][a-z0-9-]{0,62}$/i;
const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;
const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;
const NETDEV_TYPE = /^[a-z-]+$/;

function fail(field: string, message: string): never {
  throw new ConfigError(field, message);
}

function checkInt(field: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max)
    fail(field, `must be an integer in ${min}..${max}`);
  return value;
}

function checkIp(field: string, value: string, withPrefix: boolean): void {
  const [addr, prefix, ...rest] = value.split("/");
  if (rest.length > 0 || !addr || !IPV4.test(addr)) fail(field, `not an IPv4 address: ${value}`);
  if (withPrefix) {
    const p = Number(prefix);
    if (prefix === undefined || !Number.isInteger(p) || p < 1 || p > 32)
      fail(field, `needs a /prefix: ${value}`);
  } else if (prefix !== undefined) {
    fail(field, `must not have a prefix: ${value}`);
  }
}

/** Checks options and fills defaults; throws `ConfigError` naming the first bad field. */
export function validateVmConfig(input: VmConfigInput): VmConfig {
  if (typeof input.name !== "string" || !NAME.test(input.name)) {
    fail("name", "must be 1-63 letters, digits or '-', starting with a letter or digit");
  }
  const memMiB = checkInt("memMiB", input.memMiB ?? DEFAULT_MEM_MIB, 64, 1 << 20);
  const cpus = checkInt("cpus", input.cpus ?? 1, 1, 64);
  const accel = input.accel ?? "tcg";
  if (accel !== "tcg" && accel !== "kvm" && accel !== "auto") fail("accel", "must be tcg, kvm or auto");
  const bootTimeoutMs = checkInt(
    "bootTimeoutMs",
    input.bootTimeoutMs ?? DEFAULT_BOOT_TIMEOUT_MS,
    1,
    3_600_000,
  );

  const g = input.guest ?? {};
  const hostname = g.hostname ?? input.name;
  if (!NAME.test(hostname)) fail("guest.hostname", "must be a valid host name");
  if (g.ip !== undefined) checkIp("guest.ip", g.ip, true);
  if (g.gw !== undefined) checkIp("guest.gw", g.gw, false);
  for (const [host, addr] of Object.entries(g.hosts ?? {})) {
    if (!NAME.test(host)) fail("guest.hosts", `bad host name: ${host}`);
    checkIp(`guest.hosts.${host}`, addr, false);
  }
  for (const arg of g.kernelArgs ?? []) {
    if (arg.length === 0 || /\s/.test(arg))
      fail("guest.kernelArgs", `must be single words: ${JSON.stringify(arg)}`);
  }
  const guest: GuestParams = {
    hostname,
    ...(g.ip === undefined ? {} : { ip: g.ip }),
    ...(g.gw === undefined ? {} : { gw: g.gw }),
    ...(g.hosts === undefined ? {} : { hosts: { ...g.hosts } }),
    ...(g.kernelArgs === undefined ? {} : { kernelArgs: [...g.kernelArgs] }),
  };

  const ids = new Set<string>(["mgmt"]);
  const dataNics = (input.dataNics ?? []).map((nic, i): DataNic => {
    const field = `dataNics[${i}]`;
    const opt = typeof nic === "string" ? { netdev: nic } : nic;
    const type = opt.netdev.split(",", 1)[0] ?? "";
    if (!NETDEV_TYPE.test(type) || /\s/.test(opt.netdev)) fail(field, `not a -netdev spec: ${opt.netdev}`);
    let id = netdevId(opt.netdev);
    const netdev = id === undefined ? `${opt.netdev},id=data${i}` : opt.netdev;
    id ??= `data${i}`;
    if (ids.has(id)) fail(field, `duplicate netdev id ${id}`);
    ids.add(id);
    const mac = opt.mac ?? deriveMac(input.name, i + 1);
    if (!MAC.test(mac)) fail(`${field}.mac`, `not a MAC address: ${mac}`);
    return { id, netdev, mac: mac.toLowerCase() };
  });

  const env = { ...(input.env ?? {}) };
  for (const key of Object.keys(env)) {
    if (!ENV_KEY.test(key)) fail("env", `bad variable name: ${key}`);
  }
  if (input.preload !== undefined && !input.preload.startsWith("/"))
    fail("preload", "must be an absolute path");
  if ("LD_PRELOAD" in env && input.preload !== undefined)
    fail("env", "give LD_PRELOAD through `preload` only");

  return {
    name: input.name,
    memMiB,
    cpus,
    accel,
    guest,
    dataNics,
    env,
    preload: input.preload,
    bootTimeoutMs,
    extraQemuArgs: [...(input.extraQemuArgs ?? [])],
  };
}
