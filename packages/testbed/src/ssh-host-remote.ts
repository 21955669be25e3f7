/**
 * `ssh` hosts, the I/O half: connect with a pinned host key, probe the machine, reuse or copy
 * the agent (a ustar stream into `tar -x` over an exec channel: no SFTP server needed), check
 * that the agent loads, and remove on `down` exactly what `up` and the agent made there.
 *
 * Nothing is left running on the machine by `up`; the agent is started by the controller for
 * as long as its SSH channel lives. As root the agent runs in a private mount namespace
 * (util-linux `unshare`) whose /dev/shm is a directory of its own, so every RAM and dirty-log
 * file of its VMs lands where `down` removes it. No PID namespace: the store lock tells a stale
 * lock by its PID, which would read as alive (PID 1) in every new namespace.
 */
import { createHash } from "node:crypto";
import { createReadStream, existsSync } from "node:fs";
import { readdir, readFile, realpath, stat } from "node:fs/promises";
import { dirname, join, posix, relative } from "node:path";
import type { SshHostConfig } from "@vpc/cluster";
import { defaultAgentModule, HostKeyError, hostKeyFingerprint, verifyHostKey } from "@vpc/cluster";
import { loadGuestImage, shellQuote as shq } from "@vpc/controller";
import { Client, type ClientChannel } from "ssh2";
import type { DoctorCheck } from "./doctor.js";
import { HostSetupError } from "./errors.js";
import {
  type AgentCopyPlan,
  type AgentPackage,
  type AgentSource,
  agentBuildId,
  chooseAgentSource,
  evaluateSshHost,
  formatMissing,
  parseSha256sum,
  parseSshProbe,
  planAgentCopy,
  SSH_PROBE_SCRIPT,
  type SshHostFacts,
  TAR_END,
  tarHeader,
  tarPadding,
} from "./ssh-host.js";

/** What `up` recorded about an ssh host (in testbed.json), for the cluster and for `down`. */
export interface SshHostState {
  /** Fingerprint the host must present (configured, or pinned on first use). */
  readonly hostKey: string;
  /** `up` created `dir` (down removes it whole); else down removes only what it made inside. */
  readonly madeDir: boolean;
  /** How the agent got there. */
  readonly agent: AgentSource["how"];
  /** Guest image directory on the host, as the agent there loaded it at `up`. */
  readonly imageDir?: string;
  /** The agent runs in a private mount namespace with /dev/shm bound to `shmDir`. */
  readonly isolated: boolean;
  /** Set when `up` copied the agent. */
  readonly copy?: { readonly files: number; readonly bytes: number; readonly ms: number };
}

export class SshPrerequisiteError extends HostSetupError {
  readonly checks: readonly DoctorCheck[];
  constructor(hostId: string, checks: readonly DoctorCheck[]) {
    super("prerequisites", `ssh host ${hostId} lacks prerequisites:\n${formatMissing(hostId, checks)}`, {
      hostId,
    });
    this.name = "SshPrerequisiteError";
    this.checks = checks;
  }
}

export interface SshExecResult {
  readonly stdout: string;
  readonly stderr: string;
  readonly code: number | null;
}

/** One SSH connection to an ssh host, verified against the configured or pinned key. */
export class SshConnection {
  readonly fingerprint: string;
  readonly firstUse: boolean;
  readonly #client: Client;

  private constructor(client: Client, fingerprint: string, firstUse: boolean) {
    this.#client = client;
    this.fingerprint = fingerprint;
    this.firstUse = firstUse;
  }

  static async open(o: {
    readonly hostId: string;
    readonly address: string;
    readonly port: number;
    readonly user: string;
    readonly keyPath: string;
    readonly configuredKey: string | undefined;
    readonly pinnedKey: string | undefined;
    readonly timeoutMs?: number;
  }): Promise<SshConnection> {
    const privateKey = await readFile(o.keyPath).catch((cause: unknown) => {
      throw new HostSetupError("ssh-key", `host ${o.hostId}: cannot read the private key ${o.keyPath}`, {
        hostId: o.hostId,
        cause,
      });
    });
    const client = new Client();
    let verdict: ReturnType<typeof verifyHostKey> | undefined;
    await new Promise<void>((resolve, reject) => {
      client.once("ready", () => resolve());
      client.once("error", (cause) => {
        if (verdict && !verdict.ok) return reject(new HostKeyError(o.hostId, o.address, verdict));
        reject(
          new HostSetupError(
            "ssh-connect",
            `host ${o.hostId}: cannot log in as ${o.user} at ${o.address}:${o.port} with ${o.keyPath}: ${cause.message}`,
            { hostId: o.hostId, cause },
          ),
        );
      });
      try {
        client.connect({
          host: o.address,
          port: o.port,
          username: o.user,
          privateKey,
          readyTimeout: o.timeoutMs ?? 15_000,
          hostVerifier: (key: Buffer) => {
            verdict = verifyHostKey(hostKeyFingerprint(key), o.configuredKey, o.pinnedKey);
            return verdict.ok;
          },
        });
      } catch (cause) {
        // ssh2 throws synchronously on a key it cannot parse.
        reject(
          new HostSetupError("ssh-key", `host ${o.hostId}: ${o.keyPath} is not a usable private key`, {
            hostId: o.hostId,
            cause,
          }),
        );
      }
    });
    client.on("error", () => undefined);
    if (!verdict?.ok) throw new HostSetupError("host-key", `host ${o.hostId}: no host key seen`);
    return new SshConnection(client, verdict.pin, verdict.firstUse);
  }

  /** Runs `command`; `feed` writes its stdin (then it is ended). */
  exec(
    command: string,
    feed?: (ch: ClientChannel) => Promise<void>,
    timeoutMs = 120_000,
  ): Promise<SshExecResult> {
    return new Promise((resolve, reject) => {
      this.#client.exec(command, (err, ch) => {
        if (err) return reject(err);
        let stdout = "";
        let stderr = "";
        let code: number | null = null;
        const timer = setTimeout(() => {
          ch.destroy();
          reject(
            new HostSetupError("ssh-exec", `${command.slice(0, 60)}… did not finish within ${timeoutMs} ms`),
          );
        }, timeoutMs);
        ch.on("data", (d: Buffer) => {
          stdout += d.toString();
        });
        ch.stderr.on("data", (d: Buffer) => {
          stderr += d.toString();
        });
        ch.on("exit", (c: number | null) => {
          code = c;
        });
        ch.on("close", () => {
          clearTimeout(timer);
          resolve({ stdout, stderr, code });
        });
        if (feed)
          feed(ch).then(
            () => ch.end(),
            (e: unknown) => {
              ch.destroy();
              clearTimeout(timer);
              reject(e);
            },
          );
        else ch.end();
      });
    });
  }

  end(): void {
    this.#client.end();
  }
}

/** Real directory of `name` as Node would resolve it from `fromDir`, or undefined. */
async function resolvePackageDir(name: string, fromDir: string): Promise<string | undefined> {
  for (let d = fromDir; ; d = dirname(d)) {
    const candidate = join(d, "node_modules", name);
    if (existsSync(join(candidate, "package.json"))) return realpath(candidate);
    if (dirname(d) === d) return undefined;
  }
}

/** Build output and test trees that a running agent never loads. */
const SKIP_DIRS = new Set(["node_modules", "test", "tests", "examples", "obj.target", ".github", ".git"]);

async function listFiles(root: string, rel: string, out: string[]): Promise<void> {
  const st = await stat(join(root, rel)).catch(() => undefined);
  if (!st) return;
  if (st.isFile()) {
    out.push(rel);
    return;
  }
  if (!st.isDirectory()) return;
  for (const e of (await readdir(join(root, rel))).sort()) {
    if (SKIP_DIRS.has(e)) continue;
    await listFiles(root, rel === "" ? e : posix.join(rel, e), out);
  }
}

/**
 * The agent's runtime closure on this machine: @vpc/cluster (the host agent) and, transitively, its
 * `dependencies` and the `optionalDependencies` that are installed here (the platform builds
 * of native modules). A package's files are its `files` list, else its whole directory minus
 * nested node_modules, tests and native build intermediates.
 */
async function agentClosure(agentPackageDir: string): Promise<AgentPackage[]> {
  const out: AgentPackage[] = [];
  const done = new Set<string>();
  const visit = async (dir: string): Promise<void> => {
    if (done.has(dir)) return;
    done.add(dir);
    const pkg = JSON.parse(await readFile(join(dir, "package.json"), "utf8")) as {
      name: string;
      files?: string[];
      dependencies?: Record<string, string>;
      optionalDependencies?: Record<string, string>;
    };
    const files: string[] = ["package.json"];
    if (pkg.files)
      for (const f of pkg.files) await listFiles(dir, f.replace(/^\.\//, "").replace(/\/$/, ""), files);
    else await listFiles(dir, "", files);
    out.push({ name: pkg.name, dir, files: [...new Set(files)] });
    for (const dep of Object.keys(pkg.dependencies ?? {})) {
      const d = await resolvePackageDir(dep, dir);
      if (!d)
        throw new HostSetupError(
          "agent-copy",
          `${dep} (needed by ${pkg.name}) is not installed here; run npm ci`,
        );
      await visit(d);
    }
    for (const dep of Object.keys(pkg.optionalDependencies ?? {})) {
      const d = await resolvePackageDir(dep, dir);
      if (d) await visit(d);
    }
  };
  await visit(await realpath(agentPackageDir));
  return out;
}

async function sha256File(path: string): Promise<string> {
  const h = createHash("sha256");
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest("hex");
}

/** This machine's glibc version (the native code here is built against it). */
function localGlibc(): readonly [number, number] | null {
  const v = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header
    ?.glibcVersionRuntime;
  const m = v ? /^(\d+)\.(\d+)/.exec(v) : null;
  return m ? [Number(m[1]), Number(m[2])] : null;
}

export interface SshHostSpecInput {
  readonly name: string;
  readonly ssh: SshHostConfig;
  /** Guest RAM of the host's VMs. */
  readonly guestMiB: number;
}

/** What a side-effect-free look at an ssh host found; `install` then acts on it. */
export interface SshHostProbe {
  readonly conn: SshConnection;
  readonly facts: SshHostFacts;
  readonly checks: readonly DoctorCheck[];
  readonly source: AgentSource;
  readonly plan: AgentCopyPlan;
  readonly buildId: string;
  readonly hashes: readonly { dest: string; sha256: string }[];
}

/**
 * Connects, probes and decides where the agent comes from, changing nothing on the machine.
 * Throws `SshPrerequisiteError` (every missing piece with its fix), `HostKeyError`, or a
 * `HostSetupError` for a missing key or an unreachable host. The connection stays open.
 */
export async function probeSshHost(
  spec: SshHostSpecInput,
  o: { readonly pinnedKey?: string; readonly imageDir: string; readonly forceCopy?: boolean },
): Promise<SshHostProbe> {
  const conn = await SshConnection.open({
    hostId: spec.name,
    address: spec.ssh.address,
    port: spec.ssh.port,
    user: spec.ssh.user,
    keyPath: spec.ssh.key,
    configuredKey: spec.ssh.hostKey,
    pinnedKey: o.pinnedKey,
  });
  try {
    const facts = parseSshProbe((await conn.exec(SSH_PROBE_SCRIPT)).stdout);
    const configured = spec.ssh.agentModule;
    const configuredPresent =
      configured !== undefined && (await conn.exec(`test -f ${shq(configured)}`)).code === 0;
    const localModule = defaultAgentModule();
    const packages = await agentClosure(dirname(dirname(localModule)));
    // This machine's image is needed unless the host has its own installation.
    const image = await loadGuestImage(o.imageDir).catch((cause: unknown) => {
      if (configuredPresent) return undefined;
      throw new HostSetupError(
        "guest-image",
        `host ${spec.name}: the guest image to reuse or copy is not usable here: ${(cause as Error).message}`,
        { hostId: spec.name, cause },
      );
    });
    const imageFiles = image
      ? ["manifest.json", ...[image.kernel, image.initrd, image.clientKey].map((f) => relative(image.dir, f))]
      : [];
    const plan = planAgentCopy(packages, { dir: o.imageDir, files: imageFiles });
    const hashes: { dest: string; sha256: string }[] = [];
    const localSums = new Map<string, string>();
    for (const e of plan.entries) {
      const sha256 = await sha256File(e.src);
      hashes.push({ dest: e.dest, sha256 });
      localSums.set(e.src, sha256);
    }
    const buildId = agentBuildId(hashes);
    const agentDir = posix.join(spec.ssh.dir, "agent");
    // Paths go on stdin: hundreds of them would not fit one command line everywhere.
    const sameable = [...localSums.keys()].every((p) => !/\s/.test(p));
    const remoteSums =
      o.forceCopy || !sameable || configuredPresent
        ? new Map<string, string>()
        : parseSha256sum(
            (
              await conn.exec("xargs sha256sum 2>/dev/null; true", async (ch) => {
                ch.write(`${[...localSums.keys()].join("\n")}\n`);
              })
            ).stdout,
          );
    const remoteBuildId = o.forceCopy
      ? ""
      : (await conn.exec(`cat ${shq(posix.join(agentDir, "BUILD"))} 2>/dev/null; true`)).stdout.trim();
    const source = chooseAgentSource({
      configuredModule: configured,
      configuredModulePresent: configuredPresent,
      localModule,
      localImageDir: o.imageDir,
      localSums,
      remoteSums,
      buildId,
      remoteBuildId,
      agentDir,
      plan,
    });
    const checks = evaluateSshHost(facts, {
      guestMiB: spec.guestMiB,
      copying: source.how === "copy",
      localGlibc: localGlibc(),
    });
    if (configured !== undefined && !configuredPresent)
      (checks as DoctorCheck[]).push({
        id: "agent-module",
        title: "agentModule",
        required: false,
        status: "warn",
        detail: `${configured} is not on the host; ${source.how === "copy" ? "copying the agent" : `using ${source.how}`} instead`,
        fix: "fix agentModule or remove it",
      });
    if (checks.some((c) => c.status === "missing")) throw new SshPrerequisiteError(spec.name, checks);
    return { conn, facts, checks, source, plan, buildId, hashes };
  } catch (e) {
    conn.end();
    throw e;
  }
}

async function writeAll(ch: ClientChannel, data: Buffer): Promise<void> {
  if (!ch.write(data)) await new Promise((r) => ch.once("drain", r));
}

/** Streams the plan as a ustar archive into `tar -x` under `<dir>/agent` (replacing a stale copy). */
async function copyAgent(
  p: SshHostProbe,
  dir: string,
): Promise<{ files: number; bytes: number; ms: number }> {
  const t0 = performance.now();
  let bytes = 0;
  const part = posix.join(dir, "agent.part");
  const cmd = `set -e; rm -rf ${shq(part)}; mkdir -p ${shq(part)}; tar -xf - -C ${shq(part)}; rm -rf ${shq(posix.join(dir, "agent"))}; mv ${shq(part)} ${shq(posix.join(dir, "agent"))}`;
  const r = await p.conn.exec(
    cmd,
    async (ch) => {
      const dirs = new Set<string>();
      const now = Date.now() / 1000;
      const put = async (buf: Buffer) => {
        bytes += buf.length;
        await writeAll(ch, buf);
      };
      for (const e of p.plan.entries) {
        const parents: string[] = [];
        for (let d = posix.dirname(e.dest); d !== "." && !dirs.has(d); d = posix.dirname(d))
          parents.unshift(d);
        for (const d of parents) {
          dirs.add(d);
          await put(tarHeader(d, 0, 0o755, now, "dir"));
        }
        const st = await stat(e.src);
        await put(tarHeader(e.dest, st.size, st.mode & 0o777, st.mtimeMs / 1000, "file"));
        let n = 0;
        for await (const chunk of createReadStream(e.src)) {
          n += (chunk as Buffer).length;
          await put(chunk as Buffer);
        }
        if (n !== st.size) throw new HostSetupError("agent-copy", `${e.src} changed while it was copied`);
        await put(tarPadding(n));
      }
      const build = Buffer.from(`${p.buildId}\n`);
      await put(tarHeader("BUILD", build.length, 0o644, now, "file"));
      await put(build);
      await put(tarPadding(build.length));
      await put(TAR_END);
    },
    600_000,
  );
  if (r.code !== 0)
    throw new HostSetupError("agent-copy", `tar on the host failed (exit ${r.code}): ${r.stderr.trim()}`);
  return { files: p.plan.entries.length, bytes, ms: performance.now() - t0 };
}

/**
 * Runs the agent module with the host's node: it must export `runHostAgent` (and
 * `agentGuestImageDir`, which loads the guest image as the agent would), the dirty-log
 * library must be beside it (in a node_modules above it), and the guest image must load —
 * the copied one, this machine's path (same build), or the installation's own default.
 */
async function checkAgentOnHost(p: SshHostProbe, hostId: string): Promise<{ imageDir: string }> {
  const imageDir = p.source.how === "configured" ? null : p.source.imageDir;
  const script = `
const mod = ${JSON.stringify(p.source.module)};
const { existsSync } = await import("node:fs");
const { dirname, join } = await import("node:path");
const out = { agent: "missing", library: null, image: null, imageError: null };
try {
  const m = await import(mod);
  out.agent = typeof m.runHostAgent;
  for (let d = dirname(mod); ; d = dirname(d)) {
    const so = join(d, "node_modules/@vpc/dirty-log/dist/native/libvpc-dirty-log.so");
    if (existsSync(so)) { out.library = so; break; }
    if (dirname(d) === d) break;
  }
  try { out.image = await m.agentGuestImageDir(${JSON.stringify(imageDir)} ?? undefined); }
  catch (e) { out.imageError = e.message; }
} catch (e) { out.agent = e.message; }
process.stdout.write(JSON.stringify(out));`;
  const r = await p.conn.exec(`node --input-type=module -e ${shq(script)}`, undefined, 60_000);
  let out: { agent: string; library: string | null; image: string | null; imageError: string | null };
  try {
    out = JSON.parse(r.stdout);
  } catch {
    throw new HostSetupError(
      "agent-load",
      `host ${hostId}: node could not check the agent: ${r.stderr.trim().split("\n").slice(-3).join(" ")}`,
      { hostId },
    );
  }
  const where = `${p.source.module} (${p.source.how})`;
  const fix =
    p.source.how === "configured"
      ? "build the project on the host (npm ci && npm run build && make guest) or remove agentModule to have it copied"
      : "run down and up again (the copy is made anew)";
  const fail = (what: string) =>
    new HostSetupError("agent-load", `host ${hostId}: ${what} — fix: ${fix}`, { hostId });
  if (out.agent !== "function") throw fail(`the agent at ${where} does not load: ${out.agent}`);
  if (out.library === null) throw fail(`no libvpc-dirty-log.so beside the agent at ${where}`);
  if (out.image === null) throw fail(`the guest image does not load on the host: ${out.imageError}`);
  return { imageDir: out.image };
}

/**
 * Acts on a probe: records what it is about to make (`record`, before anything is made),
 * makes `dir` (+ `tmp`) and the host's shm directory, copies the agent if it must, and checks
 * that the agent module loads with the host's node. Ends the connection.
 */
export async function installSshHost(
  p: SshHostProbe,
  spec: SshHostSpecInput,
  shmDir: string,
  record: (s: SshHostState) => Promise<void>,
): Promise<SshHostState> {
  const dir = spec.ssh.dir;
  try {
    const made = (await p.conn.exec(`test -d ${shq(dir)}`)).code !== 0;
    const state: SshHostState = {
      hostKey: p.conn.fingerprint,
      madeDir: made,
      agent: p.source.how,
      ...(p.source.how === "configured" ? {} : { imageDir: p.source.imageDir }),
      isolated: p.facts.uid === 0 && p.facts.commands.unshare === true,
    };
    await record(state);
    const mk = await p.conn.exec(
      `mkdir -p ${shq(posix.join(dir, "tmp"))} ${shq(shmDir)} && chmod 700 ${shq(dir)} ${shq(shmDir)}`,
    );
    if (mk.code !== 0)
      throw new HostSetupError("ssh-dir", `host ${spec.name}: cannot make ${dir}: ${mk.stderr.trim()}`, {
        hostId: spec.name,
      });
    const copy = p.source.how === "copy" ? await copyAgent(p, dir) : undefined;
    const loaded = await checkAgentOnHost(p, spec.name);
    const final: SshHostState = { ...state, imageDir: loaded.imageDir };
    await record(final);
    return copy ? { ...final, copy } : final;
  } finally {
    p.conn.end();
  }
}

/**
 * How the controller starts the agent on an ssh host (HostClient's `wrapCommand`): its PID goes
 * to `<dir>/agent.pid` for `down` (every `exec` keeps it); as root it gets its own /dev/shm.
 */
export function sshAgentWrapper(o: {
  readonly dir: string;
  readonly shmDir: string;
  readonly isolated: boolean;
}): (agentCommand: string) => string {
  return (agentCommand) => {
    const pid = `echo $$ > ${shq(posix.join(o.dir, "agent.pid"))}`;
    if (!o.isolated) return `${pid}; ${agentCommand}`;
    const inner = `mount --bind ${shq(o.shmDir)} /dev/shm && ${agentCommand}`;
    return `${pid}; exec unshare -m --propagation private sh -c ${shq(inner)}`;
  };
}

export interface SshHostRef {
  readonly name: string;
  readonly ip: string;
  readonly sshPort: number;
  readonly user?: string;
  readonly keyPath?: string;
  readonly dir: string;
  readonly shmDir: string;
  readonly ssh?: SshHostState;
}

function connectRef(h: SshHostRef): Promise<SshConnection> {
  if (h.keyPath === undefined || h.user === undefined)
    throw new HostSetupError("read-state", `ssh host ${h.name} has no user/key in the testbed state`);
  return SshConnection.open({
    hostId: h.name,
    address: h.ip,
    port: h.sshPort,
    user: h.user,
    keyPath: h.keyPath,
    configuredKey: undefined,
    pinnedKey: h.ssh?.hostKey,
    timeoutMs: 10_000,
  });
}

/** The paths on the host that `up` and the agent made (what `down` removes). */
export function sshHostPaths(h: SshHostRef): string[] {
  const inside = ["agent", "agent.part", "agent.pid", "store", "vnet", "chanlogs", "tmp"].map((p) =>
    posix.join(h.dir, p),
  );
  // A directory that was there before `up` (or of unknown origin) keeps everything else in it.
  return [...(h.ssh?.madeDir === true ? [h.dir] : inside), h.shmDir];
}

function killScript(h: SshHostRef): string {
  const tmp = posix.join(h.dir, "tmp");
  const pidFile = shq(posix.join(h.dir, "agent.pid"));
  // The agent only if its environment names this host's tmp dir (guards against PID reuse);
  // then every QEMU it left (SIGKILLed agent): their QMP sockets live in that tmp dir.
  const agent = `pid=$(cat ${pidFile} 2>/dev/null); if [ -n "$pid" ] && tr '\\0' '\\n' < /proc/$pid/environ 2>/dev/null | grep -qxF ${shq(`TMPDIR=${tmp}`)}; then kill -9 "$pid" && echo "killed $pid agent"; fi`;
  const qemus = `for p in /proc/[0-9]*; do n=\${p#/proc/}; [ "$n" = "$$" ] && continue; tr '\\0' ' ' < $p/cmdline 2>/dev/null | grep -q qemu-system || continue; tr '\\0' ' ' < $p/cmdline 2>/dev/null | grep -qF ${shq(`${tmp}/`)} && kill -9 "$n" && echo "killed $n qemu"; done`;
  return `${agent}; ${qemus}; true`;
}

/** Kills a leftover agent (and with it its VMs) and removes what the testbed made on the host. */
export async function sshHostDown(h: SshHostRef): Promise<string[]> {
  const conn = await connectRef(h);
  try {
    const paths = sshHostPaths(h);
    const list = paths.map(shq).join(" ");
    const r = await conn.exec(
      `${killScript(h)}; sleep 0.2; for p in ${list}; do [ -e "$p" ] && echo "$p"; done; rm -rf ${list}`,
    );
    if (r.code !== 0)
      throw new HostSetupError("ssh-down", `host ${h.name}: removing ${list} failed: ${r.stderr.trim()}`);
    return r.stdout
      .split("\n")
      .filter(Boolean)
      .map((l) => {
        const k = /^killed (\d+) (\w+)$/.exec(l);
        return k ? `pid ${k[1]} (${k[2]} on ${h.name})` : `${h.name}:${l}`;
      });
  } finally {
    conn.end();
  }
}

/** What of the testbed is still on the host (for leak checks); unreachable is reported as such. */
export async function sshHostLeftovers(h: SshHostRef): Promise<string[]> {
  let conn: SshConnection;
  try {
    conn = await connectRef(h);
  } catch (e) {
    return [`${h.name}: cannot check (${(e as Error).message})`];
  }
  try {
    const list = sshHostPaths(h).map(shq).join(" ");
    const r = await conn.exec(`for p in ${list}; do [ -e "$p" ] && echo "$p"; done; true`);
    return r.stdout
      .split("\n")
      .filter(Boolean)
      .map((l) => `${h.name}:${l}`);
  } finally {
    conn.end();
  }
}

/** Health of an ssh host of a testbed that `up` made (empty: healthy). */
export async function sshHostProblems(h: SshHostRef, agentModule: string | undefined): Promise<string[]> {
  let conn: SshConnection;
  try {
    conn = await connectRef(h);
  } catch (e) {
    return [(e as Error).message];
  }
  try {
    const p: string[] = [];
    if ((await conn.exec(`test -d ${shq(h.dir)}`)).code !== 0) p.push(`${h.dir} is missing on the host`);
    if (agentModule !== undefined && (await conn.exec(`test -f ${shq(agentModule)}`)).code !== 0)
      p.push(`the agent ${agentModule} is missing on the host`);
    return p;
  } finally {
    conn.end();
  }
}
