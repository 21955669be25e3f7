/**
 * Controller side of one host: an ssh2 connection to the host's SSH server, the host agent
 * started with `exec`, and the RPC over that channel's stdin/stdout. No listener is opened on
 * the host: the agent is reachable only through the authenticated SSH connection.
 */
import { createWriteStream, existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { type Logger, shellQuote } from "@vpc/controller";
import { Client, type ClientChannel } from "ssh2";
import { ClusterError } from "./errors.js";
import { HostKeyError, hostKeyFingerprint, verifyHostKey } from "./host-key.js";
import { RpcPeer } from "./rpc.js";

export interface HostConnectOptions {
  readonly hostId: string;
  readonly address: string;
  readonly port: number;
  /** Default root. */
  readonly user?: string;
  readonly privateKey: Buffer;
  /** Environment for the agent (e.g. TMPDIR) — set on its command line, dropbear passes none. */
  readonly env?: Readonly<Record<string, string>>;
  /** Agent stderr (JSON log lines) is appended here. */
  readonly logFile: string;
  /** Default: dist/index.js of this package. */
  readonly agentModule?: string;
  readonly logger: Logger;
  readonly connectTimeoutMs?: number;
  /**
   * `ssh` hosts: the fingerprint (`SHA256:…`) the host must present. Absent: any key (the
   * emulated hosts get a new key per run and sit on this machine's own bridge).
   */
  readonly hostKey?: string;
  /** `ssh` hosts: turns the agent's command into the one run on the host (see sshAgentCommand). */
  readonly wrapCommand?: (command: string) => string;
}

/** dist/index.js of @vpc/cluster (it exports `runHostAgent`), found from wherever this code runs (dist bundle or src). */
export function defaultAgentModule(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const pkg = join(dir, "package.json");
    if (
      existsSync(pkg) &&
      (JSON.parse(readFileSync(pkg, "utf8")) as { name?: string }).name === "@vpc/cluster"
    )
      return join(dir, "dist", "index.js");
    dir = dirname(dir);
  }
  throw new ClusterError("CLUSTER_STATE", "cannot find the @vpc/cluster package directory");
}

export class HostClient {
  readonly hostId: string;
  readonly rpc: RpcPeer;
  readonly #ssh: Client;
  readonly #channel: ClientChannel;
  readonly exited: Promise<void>;

  private constructor(
    hostId: string,
    ssh: Client,
    channel: ClientChannel,
    rpc: RpcPeer,
    exited: Promise<void>,
  ) {
    this.hostId = hostId;
    this.#ssh = ssh;
    this.#channel = channel;
    this.rpc = rpc;
    this.exited = exited;
  }

  static async connect(o: HostConnectOptions): Promise<HostClient> {
    const ssh = new Client();
    let keyVerdict: ReturnType<typeof verifyHostKey> | undefined;
    await new Promise<void>((resolve, reject) => {
      ssh.once("ready", () => resolve());
      ssh.once("error", (e) =>
        reject(
          keyVerdict && !keyVerdict.ok
            ? new HostKeyError(o.hostId, o.address, keyVerdict)
            : new ClusterError("RPC_INTERRUPTED", `ssh to ${o.hostId} (${o.address}) failed: ${e.message}`, {
                hostId: o.hostId,
                cause: e,
              }),
        ),
      );
      ssh.connect({
        host: o.address,
        port: o.port,
        username: o.user ?? "root",
        privateKey: o.privateKey,
        readyTimeout: o.connectTimeoutMs ?? 20_000,
        hostVerifier: (key: Buffer) => {
          if (o.hostKey === undefined) return true;
          keyVerdict = verifyHostKey(hostKeyFingerprint(key), undefined, o.hostKey);
          return keyVerdict.ok;
        },
      });
    });
    ssh.on("error", (e) => o.logger.log("warn", "cluster.ssh-error", { hostId: o.hostId, error: e.message }));
    const env = Object.entries(o.env ?? {})
      .map(([k, v]) => `${k}=${shellQuote(v)}`)
      .join(" ");
    const mod = o.agentModule ?? defaultAgentModule();
    const script = `import(${JSON.stringify(mod)}).then((m) => m.runHostAgent())`;
    const agent = `exec env ${env} node --input-type=module -e ${shellQuote(script)}`;
    const command = o.wrapCommand ? o.wrapCommand(agent) : agent;
    const channel = await new Promise<ClientChannel>((resolve, reject) =>
      ssh.exec(command, (err, ch) => (err ? reject(err) : resolve(ch))),
    ).catch((e: unknown) => {
      ssh.end();
      throw new ClusterError("RPC_INTERRUPTED", `starting the agent on ${o.hostId} failed`, {
        hostId: o.hostId,
        cause: e,
      });
    });
    const log = createWriteStream(o.logFile, { flags: "a" });
    channel.stderr.pipe(log);
    const exited = new Promise<void>((resolve) => channel.once("close", () => resolve()));
    const rpc = new RpcPeer(channel, channel, { idPrefix: "c#", peerId: o.hostId, logger: o.logger });
    return new HostClient(o.hostId, ssh, channel, rpc, exited);
  }

  call<T>(method: string, params: unknown, timeoutMs: number): Promise<T> {
    return this.rpc.call<T>(method, params, { timeoutMs });
  }

  /** Ends the agent's stdin (it stops its VMs and exits), then the SSH connection. */
  async close(timeoutMs = 30_000): Promise<void> {
    this.#channel.end();
    await exitedWithin(this.exited, timeoutMs);
    this.rpc.close();
    this.#ssh.end();
  }

  /** Drops the connection at once: the agent sees its stdin end (a lost controller link). */
  abort(): void {
    this.rpc.close();
    this.#channel.destroy();
    this.#ssh.end();
  }
}

/**
 * Waits for `exited` at most `timeoutMs`; the timer is cleared either way, so a finished
 * controller does not linger until it fires.
 */
export async function exitedWithin(exited: Promise<void>, timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([exited, new Promise<void>((r) => (timer = setTimeout(r, timeoutMs)))]);
  clearTimeout(timer);
}
