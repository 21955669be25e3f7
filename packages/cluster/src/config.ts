/**
 * The cluster description (pure validation): hosts, the VMs on each, RAM, vCPUs, checkpoint
 * engine and predictor strategy, interval, fabric and data network prefixes, the NPB workload.
 * `validateClusterConfig` fills defaults and derives addresses; `ClusterConfigError.field` names
 * the first bad field as a JSON path (e.g. `hosts[1].vms[0].memMiB`).
 */
import { readFile } from "node:fs/promises";
import { isAbsolute } from "node:path";
import { type EngineSpec, parseEngineSpec } from "@vpc/controller";
import { isNpbClass, isNpbKernel, type NpbClass, type NpbKernel } from "@vpc/npb";
import { ClusterConfigError } from "./errors.js";
import { FINGERPRINT } from "./host-key.js";

export interface ClusterConfigInput {
  readonly name?: string;
  /** Private prefix of the fabric bridge; the bridge takes .1, hosts .2, .3, … (default 10.77.0.0/24). */
  readonly fabricPrefix?: string;
  /** Prefix of the guests' data network; VMs take .11, .12, … in config order (default 192.168.77.0/24). */
  readonly dataPrefix?: string;
  /** Checkpoint engine spec without strategy (default "vpc"). */
  readonly engine?: string;
  /** Predictor strategy for `vpc` (default the engine's default). */
  readonly strategy?: string;
  readonly intervalMs?: number;
  /** A host that has not reported within this aborts the epoch (default 60 000). */
  readonly epochTimeoutMs?: number;
  /** Defaults for every VM. */
  readonly vm?: { readonly memMiB?: number; readonly cpus?: number };
  readonly hosts: readonly ClusterHostInput[];
  readonly workload?: {
    readonly kernel?: string;
    readonly class?: string;
    /** MPI processes (default: one per VM). */
    readonly np?: number;
    /** Runs of the kernel one after another inside the guest (default 1). */
    readonly repeat?: number;
  };
  /** fsync the host stores on commit (default true). */
  readonly fsync?: boolean;
}

/** The kinds of host (ARCHITECTURE.md §5); the agent, vnet and checkpoint code are the same for all. */
export const HOST_KINDS = ["netns", "qemu", "ssh"] as const;
export type HostKind = (typeof HOST_KINDS)[number];

export interface ClusterHostInput {
  readonly name: string;
  /** Default "netns". */
  readonly kind?: string;
  readonly vms: readonly { readonly name: string; readonly memMiB?: number; readonly cpus?: number }[];
  /** `qemu` hosts: RAM and vCPUs of the L1 VM. */
  readonly memMiB?: number;
  readonly cpus?: number;
  /** `ssh` hosts: an existing Linux machine. */
  readonly address?: string;
  readonly port?: number;
  readonly user?: string;
  /** Private key (OpenSSH format) the controller logs in with. */
  readonly key?: string;
  /** The host's working directory (stores, sockets, logs); default /var/tmp/vpc-<cluster>-<host>. */
  readonly dir?: string;
  /** Path of @vpc/cluster's dist/index.js (the host agent) on the host, when it is installed there already. */
  readonly agentModule?: string;
  /** The host's SSH key fingerprint (`SHA256:…`, as `ssh-keygen -lf` prints); default: trust on first use. */
  readonly hostKey?: string;
}

export interface ClusterVmConfig {
  readonly name: string;
  readonly hostId: string;
  readonly memMiB: number;
  readonly cpus: number;
  /** Data NIC address with prefix, e.g. 192.168.77.11/24. */
  readonly dataIp: string;
}

export interface QemuHostConfig {
  readonly memMiB: number;
  readonly cpus: number;
}

export interface SshHostConfig {
  readonly address: string;
  readonly port: number;
  readonly user: string;
  /** Absolute path of the private key on this machine. */
  readonly key: string;
  readonly dir: string;
  readonly agentModule: string | undefined;
  /** Expected host key fingerprint; undefined: pinned on first use in the testbed's run dir. */
  readonly hostKey: string | undefined;
}

export interface ClusterHostConfig {
  readonly name: string;
  readonly kind: HostKind;
  /** Fabric address without prefix (for `ssh` hosts: their address). */
  readonly fabricIp: string;
  readonly vms: readonly ClusterVmConfig[];
  /** Set for `qemu` hosts. */
  readonly qemu?: QemuHostConfig;
  /** Set for `ssh` hosts. */
  readonly ssh?: SshHostConfig;
}

export interface ClusterConfig {
  readonly name: string;
  readonly fabric: { readonly prefix: string; readonly bridgeIp: string; readonly prefixLength: number };
  readonly dataPrefix: string;
  /** The parsed engine spec (engine and strategy together); `formatEngineSpec` gives its canonical string. */
  readonly engine: EngineSpec;
  readonly intervalMs: number;
  readonly epochTimeoutMs: number;
  readonly hosts: readonly ClusterHostConfig[];
  readonly workload: {
    readonly kernel: NpbKernel;
    readonly class: NpbClass;
    readonly np: number;
    readonly repeat: number;
  };
  readonly fsync: boolean;
}

const NAME = /^[a-z][a-z0-9]{0,7}$/;
const SSH_FIELDS = ["address", "port", "user", "key", "dir", "agentModule", "hostKey"];
const HOST_FIELDS = new Set(["name", "kind", "vms", "memMiB", "cpus", ...SSH_FIELDS]);

/**
 * RAM an L1 host keeps for itself (kernel, Node, the agent, QEMU processes) beyond its guests'
 * RAM files, which live in its /dev/shm (3/4 of its RAM by default, images/host).
 */
const QEMU_HOST_OWN_MIB = 384;

/** Guest RAM an L1 host of `memMiB` can hold. */
export function qemuGuestBudgetMiB(memMiB: number): number {
  return Math.min(Math.floor((memMiB * 3) / 4), memMiB - QEMU_HOST_OWN_MIB);
}

/** The smallest L1 RAM that holds `guestMiB` of guests. */
export function qemuHostMiBFor(guestMiB: number): number {
  return Math.max(Math.ceil((guestMiB * 4) / 3), guestMiB + QEMU_HOST_OWN_MIB);
}

const HOSTNAME =
  /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const USER = /^[a-z_][a-z0-9_-]{0,31}$/;

function sshHostConfig(
  f: string,
  ho: Record<string, unknown>,
  cluster: string,
  hostId: string,
): SshHostConfig {
  if (typeof ho.address !== "string" || !HOSTNAME.test(ho.address))
    fail(
      `${f}.address`,
      `an ssh host needs an address (IPv4 or DNS name), got ${JSON.stringify(ho.address)}`,
    );
  if (typeof ho.key !== "string" || !isAbsolute(ho.key))
    fail(`${f}.key`, "an ssh host needs the absolute path of a private key (OpenSSH format)");
  const user = ho.user ?? "root";
  if (typeof user !== "string" || !USER.test(user))
    fail(`${f}.user`, `not a user name: ${JSON.stringify(user)}`);
  const dir = ho.dir ?? `/var/tmp/vpc-${cluster}-${hostId}`;
  if (typeof dir !== "string" || !isAbsolute(dir) || /[\s'"\\]/.test(dir))
    fail(`${f}.dir`, "must be an absolute path without spaces or quotes");
  if (ho.agentModule !== undefined && (typeof ho.agentModule !== "string" || !isAbsolute(ho.agentModule)))
    fail(`${f}.agentModule`, "must be an absolute path");
  if (ho.hostKey !== undefined && (typeof ho.hostKey !== "string" || !FINGERPRINT.test(ho.hostKey)))
    fail(
      `${f}.hostKey`,
      "must be a SHA256 fingerprint as `ssh-keygen -lf` prints it (SHA256: + 43 base64 characters)",
    );
  return {
    address: ho.address,
    port: int(`${f}.port`, ho.port, 1, 65535, 22),
    user,
    key: ho.key,
    dir,
    agentModule: ho.agentModule as string | undefined,
    hostKey: ho.hostKey as string | undefined,
  };
}
const VM_NAME = /^[a-z][a-z0-9-]{0,30}$/;

function fail(field: string, message: string): never {
  throw new ClusterConfigError(field, message);
}

function int(field: string, v: unknown, min: number, max: number, dflt: number): number {
  const n = v === undefined ? dflt : v;
  if (typeof n !== "number" || !Number.isInteger(n) || n < min || n > max)
    fail(field, `must be an integer in ${min}..${max}, got ${JSON.stringify(v)}`);
  return n;
}

/** Parses `a.b.c.d/len` into the 32-bit network address and the length. */
export function parsePrefix(field: string, s: unknown): { base: number; length: number } {
  const m = typeof s === "string" ? /^(\d+)\.(\d+)\.(\d+)\.(\d+)\/(\d+)$/.exec(s) : null;
  if (!m) return fail(field, `expected an IPv4 prefix like 10.77.0.0/24, got ${JSON.stringify(s)}`);
  const octets = m.slice(1, 5).map(Number);
  const length = Number(m[5]);
  if (octets.some((o) => o > 255) || length < 8 || length > 29)
    fail(field, `octets must be ≤ 255 and the length in 8..29: ${s}`);
  const addr = octets.reduce((a, o) => a * 256 + o, 0);
  const size = 2 ** (32 - length);
  if (addr % size !== 0) fail(field, `${s} has host bits set`);
  const first = octets[0]!;
  const second = octets[1]!;
  const isPrivate =
    first === 10 || (first === 172 && second >= 16 && second <= 31) || (first === 192 && second === 168);
  if (!isPrivate) fail(field, `${s} is not a private (RFC 1918) prefix`);
  return { base: addr, length };
}

export function formatIp(n: number): string {
  return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join(".");
}

/**
 * Checks a parsed JSON value and fills defaults; throws `ClusterConfigError` naming the first bad
 * field. `engine`, when given, is an already parsed spec used instead of the input's `engine` and
 * `strategy` (which must then be absent): a caller that holds an `EngineSpec` does not turn it
 * back into those two strings.
 */
export function validateClusterConfig(input: unknown, engine?: EngineSpec): ClusterConfig {
  if (typeof input !== "object" || input === null || Array.isArray(input)) fail("$", "must be a JSON object");
  const c = input as Record<string, unknown>;
  const known = new Set([
    "name",
    "fabricPrefix",
    "dataPrefix",
    "engine",
    "strategy",
    "intervalMs",
    "epochTimeoutMs",
    "vm",
    "hosts",
    "workload",
    "fsync",
    "$schema",
    "description",
  ]);
  for (const k of Object.keys(c)) if (!known.has(k)) fail(k, "unknown field");
  const name = c.name === undefined ? "vc" : c.name;
  if (typeof name !== "string" || !NAME.test(name)) fail("name", "must be 1-8 lowercase letters or digits");

  const fabric = parsePrefix("fabricPrefix", c.fabricPrefix ?? "10.77.0.0/24");
  const data = parsePrefix("dataPrefix", c.dataPrefix ?? "192.168.77.0/24");

  if (engine !== undefined && (c.engine !== undefined || c.strategy !== undefined))
    fail(c.engine !== undefined ? "engine" : "strategy", "given both in the input and as a parsed spec");
  const spec = engine ?? parseConfigEngine(c.engine ?? "vpc", c.strategy);
  if (spec.name === "qemu-snapshot" || spec.name === "qemu-stop")
    fail("engine", `${spec.name} keeps RAM in QEMU's stream; cluster checkpoints need an agent engine`);

  const intervalMs = int("intervalMs", c.intervalMs, 100, 3_600_000, 1000);
  const epochTimeoutMs = int("epochTimeoutMs", c.epochTimeoutMs, 1000, 3_600_000, 60_000);
  const vmDefaults = (c.vm ?? {}) as Record<string, unknown>;
  if (typeof vmDefaults !== "object" || Array.isArray(vmDefaults)) fail("vm", "must be an object");
  const memDefault = int("vm.memMiB", vmDefaults.memMiB, 128, 65536, 256);
  const cpuDefault = int("vm.cpus", vmDefaults.cpus, 1, 64, 1);

  if (!Array.isArray(c.hosts) || c.hosts.length === 0) fail("hosts", "must be a non-empty array");
  const hostSize = 2 ** (32 - fabric.length);
  const hostNames = new Set<string>();
  const vmNames = new Set<string>();
  let vmIndex = 0;
  let fabricIndex = 0;
  const dataSize = 2 ** (32 - data.length);
  const hosts = (c.hosts as unknown[]).map((h, i): ClusterHostConfig => {
    const f = `hosts[${i}]`;
    if (typeof h !== "object" || h === null) fail(f, "must be an object");
    const ho = h as Record<string, unknown>;
    for (const k of Object.keys(ho)) if (!HOST_FIELDS.has(k)) fail(`${f}.${k}`, "unknown field");
    if (typeof ho.name !== "string" || !NAME.test(ho.name))
      fail(`${f}.name`, "must be 1-8 lowercase letters or digits");
    if (hostNames.has(ho.name)) fail(`${f}.name`, `duplicate host ${ho.name}`);
    hostNames.add(ho.name);
    const kind = ho.kind ?? "netns";
    if (typeof kind !== "string" || !(HOST_KINDS as readonly string[]).includes(kind))
      fail(`${f}.kind`, `unknown host kind ${JSON.stringify(kind)} (one of ${HOST_KINDS.join(", ")})`);
    const hostKind = kind as HostKind;
    for (const k of hostKind === "ssh" ? ["memMiB", "cpus"] : SSH_FIELDS)
      if (ho[k] !== undefined) fail(`${f}.${k}`, `is not a field of ${hostKind} hosts`);
    if (!Array.isArray(ho.vms) || ho.vms.length === 0) fail(`${f}.vms`, "must be a non-empty array");
    const hostId = ho.name;
    const vms = (ho.vms as unknown[]).map((v, j): ClusterVmConfig => {
      const g = `${f}.vms[${j}]`;
      if (typeof v !== "object" || v === null) fail(g, "must be an object");
      const vo = v as Record<string, unknown>;
      if (typeof vo.name !== "string" || !VM_NAME.test(vo.name))
        fail(`${g}.name`, "must start with a letter: lowercase letters, digits, '-' (≤ 31)");
      if (vmNames.has(vo.name)) fail(`${g}.name`, `duplicate VM ${vo.name}`);
      vmNames.add(vo.name);
      const offset = 11 + vmIndex++;
      if (offset >= dataSize - 1) fail(`${g}`, `no address left in dataPrefix ${c.dataPrefix}`);
      return {
        name: vo.name,
        hostId,
        memMiB: int(`${g}.memMiB`, vo.memMiB, 128, 65536, memDefault),
        cpus: int(`${g}.cpus`, vo.cpus, 1, 64, cpuDefault),
        dataIp: `${formatIp(data.base + offset)}/${data.length}`,
      };
    });
    const guestMiB = vms.reduce((a, v) => a + v.memMiB, 0);
    if (hostKind === "ssh") {
      const ssh = sshHostConfig(f, ho, name, hostId);
      return { name: hostId, kind: hostKind, fabricIp: ssh.address, vms, ssh };
    }
    if (fabricIndex + 3 > hostSize) fail(f, `no address left in fabricPrefix ${c.fabricPrefix}`);
    const fabricIp = formatIp(fabric.base + 2 + fabricIndex++);
    if (hostKind === "netns") return { name: hostId, kind: hostKind, fabricIp, vms };
    const qemu = {
      memMiB: int(`${f}.memMiB`, ho.memMiB, 512, 65536, Math.max(1536, qemuHostMiBFor(guestMiB))),
      cpus: int(`${f}.cpus`, ho.cpus, 1, 64, 1),
    };
    if (qemuHostMiBFor(guestMiB) > qemu.memMiB)
      fail(
        `${f}.memMiB`,
        `the VMs of qemu host ${hostId} need ${guestMiB} MiB of guest RAM; an L1 host of ${qemu.memMiB} MiB ` +
          `gives its guests at most ${qemuGuestBudgetMiB(qemu.memMiB)} MiB (set memMiB ≥ ${qemuHostMiBFor(guestMiB)})`,
      );
    return { name: hostId, kind: hostKind, fabricIp, vms, qemu };
  });
  const addresses = new Map<string, string>([[formatIp(fabric.base + 1), "the fabric bridge"]]);
  hosts.forEach((h, i) => {
    const other = addresses.get(h.fabricIp);
    if (other !== undefined) fail(`hosts[${i}].address`, `${h.fabricIp} is already ${other}`);
    addresses.set(h.fabricIp, `host ${h.name}`);
  });

  const w = (c.workload ?? {}) as Record<string, unknown>;
  const kernel = w.kernel ?? "cg";
  if (typeof kernel !== "string" || !isNpbKernel(kernel))
    fail("workload.kernel", `unknown NPB kernel ${JSON.stringify(kernel)}`);
  const cls = w.class ?? "S";
  if (typeof cls !== "string" || !isNpbClass(cls))
    fail("workload.class", `unknown NPB class ${JSON.stringify(cls)}`);
  const np = int("workload.np", w.np, 1, 1024, vmIndex);
  const repeat = int("workload.repeat", w.repeat, 1, 1000, 1);
  if (c.fsync !== undefined && typeof c.fsync !== "boolean") fail("fsync", "must be true or false");

  return {
    name,
    fabric: {
      prefix: c.fabricPrefix === undefined ? "10.77.0.0/24" : String(c.fabricPrefix),
      bridgeIp: formatIp(fabric.base + 1),
      prefixLength: fabric.length,
    },
    dataPrefix: c.dataPrefix === undefined ? "192.168.77.0/24" : String(c.dataPrefix),
    engine: spec,
    intervalMs,
    epochTimeoutMs,
    hosts,
    workload: { kernel, class: cls, np, repeat },
    fsync: (c.fsync as boolean | undefined) ?? true,
  };
}

/** A config's `engine` (a spec without strategy) and `strategy` (vpc's predictor), parsed into one spec. */
function parseConfigEngine(engine: unknown, strategy: unknown): EngineSpec {
  if (typeof engine !== "string" || engine.includes("("))
    fail("engine", "must be an engine name with optional :params (put the predictor in `strategy`)");
  let spec: EngineSpec;
  try {
    spec = parseEngineSpec(engine);
  } catch (e) {
    return fail("engine", (e as Error).message);
  }
  if (strategy === undefined) return spec;
  if (typeof strategy !== "string" || spec.name !== "vpc")
    fail("strategy", "is a string, and only for engine vpc");
  // The spec crosses to the host agents as one line (formatEngineSpec), which the grammar reads back.
  if (/[\n\r\u2028\u2029]/.test(strategy)) fail("strategy", "must be one line");
  return { ...spec, strategy };
}

/** Reads and validates a JSON cluster description; a bad file is a `ClusterConfigError` on field "$". */
export async function loadClusterConfig(path: string): Promise<ClusterConfig> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    throw new ClusterConfigError("$", `cannot read ${path}: ${(e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ClusterConfigError("$", `${path} is not JSON: ${(e as Error).message}`);
  }
  return validateClusterConfig(json);
}

/** Every VM of the cluster, in config order. */
export function clusterVms(config: ClusterConfig): ClusterVmConfig[] {
  return config.hosts.flatMap((h) => h.vms);
}
