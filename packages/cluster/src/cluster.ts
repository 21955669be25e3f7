/**
 * A running virtual cluster: one host agent per host (over SSH), the VMs of the cluster
 * description, global checkpoints (two-phase, see coordinator.ts) and VC restore. The hosts come
 * as endpoints (`HostEndpoint`: where to log in, with which key, how to wrap the agent's
 * command); who made them, and how, is not this module's business (see @vpc/testbed).
 *
 * The cluster manifest — the commit point of every global epoch — lives with the controller in
 * `<controllerDir>/epochs/<epoch>.json` (temp + fsync + rename, with a checksum checked before a
 * restore uses it: cluster-manifest.ts). Host stores hold the data.
 */
import { randomBytes } from "node:crypto";
import { appendFile, mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { ExecResult } from "@vpc/controller";
import { formatEngineSpec, type Logger, silentLogger, writeFileDurable } from "@vpc/controller";
import {
  CLUSTER_MANIFEST_FORMAT,
  type ClusterManifest,
  decodeClusterManifest,
  encodeClusterManifest,
} from "./cluster-manifest.js";
import { type ClusterConfig, clusterVms } from "./config.js";
import { type EpochMetrics, epochMetrics, type HostEpochReport, runGlobalEpoch } from "./coordinator.js";
import { ClusterError } from "./errors.js";
import { exitedWithin, HostClient } from "./host-client.js";

/** How the controller reaches the agent of one host of the config, over SSH. */
export interface HostEndpoint {
  /** The config's host name. */
  readonly name: string;
  /** SSH address; also the address the agent listens on for its peers' tunnels. */
  readonly address: string;
  readonly port: number;
  readonly user: string;
  /** Private key file of the login. */
  readonly keyPath: string;
  /** The agent's directory on the host (stores, vnet sockets; its TMPDIR is `<dir>/tmp`). */
  readonly dir: string;
  /** Directory on this machine that receives the agent's log (`agent.log`). */
  readonly logDir: string;
  /** The agent's module on the host (default: this package's dist/index.js, at the same path there). */
  readonly agentModule?: string;
  /** Fingerprint (`SHA256:…`) the host must present; absent: any key. */
  readonly hostKey?: string;
  /** Guest image directory on the host (default: `ClusterOptions.image`). */
  readonly imageDir?: string;
  /** Turns the agent's command into the one run on the host (e.g. a private mount namespace). */
  readonly wrapCommand?: (command: string) => string;
}

export interface ClusterOptions {
  readonly config: ClusterConfig;
  /** One endpoint per host of `config` (matched by name). */
  readonly hosts: readonly HostEndpoint[];
  /** This machine's directory of the cluster: the epoch manifests, the secret, metrics. */
  readonly controllerDir: string;
  /** Guest image directory (default: the agents' default, build/images/guest). */
  readonly image?: string;
  readonly logger?: Logger;
  /** Called with progress lines for long steps. */
  readonly onProgress?: (line: string) => void;
  /** Timeout of agent calls that boot or restore VMs (default 300 000 ms). */
  readonly bootTimeoutMs?: number;
}

export interface RestoreResult {
  readonly epoch: number;
  /** Restore call sent → every VM running again (ms). */
  readonly totalMs: number;
  readonly vms: readonly { vmId: string; ms: number; replayed: number }[];
  /** Newer committed epochs passed over because their manifest failed its check (newest first). */
  readonly skipped: readonly { epoch: number; reason: string }[];
}

interface AgentVmSpec {
  name: string;
  memMiB: number;
  cpus: number;
  dataIp: string;
  hosts: Record<string, string>;
  bootTimeoutMs: number;
}

export class Cluster {
  readonly config: ClusterConfig;
  readonly controllerDir: string;
  /** `config.engine` as the canonical string that goes to the host agents and into the manifests. */
  readonly #engine: string;
  readonly #o: ClusterOptions;
  readonly #log: Logger;
  #hosts: HostClient[] = [];
  #nextEpoch = 0;
  #loop: { stop: boolean; done: Promise<void>; wake: () => void } | undefined;
  readonly metrics: EpochMetrics[] = [];
  readonly aborted: { epoch: number; reason: string }[] = [];

  private constructor(o: ClusterOptions) {
    this.#o = o;
    this.config = o.config;
    this.#engine = formatEngineSpec(o.config.engine);
    this.controllerDir = o.controllerDir;
    this.#log = o.logger ?? silentLogger;
  }

  /** Starts an agent on every host, joins their switches into a full mesh, boots every VM. */
  static async start(o: ClusterOptions): Promise<Cluster> {
    const c = new Cluster(o);
    await mkdir(join(c.controllerDir, "epochs"), { recursive: true, mode: 0o700 });
    await writeFile(join(c.controllerDir, "secret"), randomBytes(32).toString("hex"), { mode: 0o600 });
    try {
      await c.#connect();
      c.#progress(`booting ${clusterVms(c.config).length} VMs on ${c.#hosts.length} hosts`);
      const boots = await Promise.all(
        c.#hosts.map((h, i) =>
          h.call<{ vmId: string; bootMs: number }[]>("startVms", { vms: c.#specs(i) }, c.#bootTimeout()),
        ),
      );
      c.#progress(
        `booted: ${boots
          .flat()
          .map((b) => `${b.vmId} ${(b.bootMs / 1000).toFixed(1)} s`)
          .join(", ")}`,
      );
      return c;
    } catch (e) {
      await c.close().catch(() => undefined);
      throw e;
    }
  }

  /** Restarts the whole cluster on its hosts from the newest committed epoch (or `epoch`). */
  static async restore(
    o: ClusterOptions & { epoch?: number },
  ): Promise<{ cluster: Cluster; result: RestoreResult }> {
    const c = new Cluster(o);
    const { epoch, skipped } = await c.#restorableEpoch(o.epoch);
    try {
      const t0 = performance.now();
      await c.#connect();
      // Epoch numbers stay unique: some hosts may hold locally committed parts of aborted epochs.
      const newest = await Promise.all(c.#hosts.map((h) => h.call<number>("newestLocalEpoch", null, 30_000)));
      c.#nextEpoch = Math.max(epoch, ...newest) + 1;
      c.#progress(`restoring ${clusterVms(c.config).length} VMs from epoch ${epoch}`);
      const vms = (
        await Promise.all(
          c.#hosts.map((h, i) =>
            h.call<{ vmId: string; ms: number; replayed: number }[]>(
              "restore",
              { epoch, vms: c.#specs(i) },
              c.#bootTimeout(),
            ),
          ),
        )
      ).flat();
      return { cluster: c, result: { epoch, totalMs: performance.now() - t0, vms, skipped } };
    } catch (e) {
      await c.close().catch(() => undefined);
      throw new ClusterError(
        "RESTORE_FAILED",
        `restore from epoch ${epoch} failed: ${(e as Error).message}`,
        { epoch, cause: e },
      );
    }
  }

  #bootTimeout(): number {
    return this.#o.bootTimeoutMs ?? 300_000;
  }

  #progress(line: string): void {
    this.#o.onProgress?.(line);
    this.#log.log("info", "cluster.progress", { line });
  }

  async #connect(): Promise<void> {
    const secret = (await readFile(join(this.controllerDir, "secret"), "utf8")).trim();
    const keys = new Map<string, Buffer>();
    const keyOf = async (path: string): Promise<Buffer> => {
      const cached = keys.get(path);
      if (cached) return cached;
      const key = await readFile(path).catch((cause: unknown) => {
        throw new ClusterError("CLUSTER_CONFIG", `cannot read the private key ${path}`, { cause });
      });
      keys.set(path, key);
      return key;
    };
    const tunnels: { host: string; port: number }[] = [];
    for (const hc of this.config.hosts) {
      const ep = this.#o.hosts.find((h) => h.name === hc.name);
      if (!ep)
        throw new ClusterError("CLUSTER_CONFIG", `no endpoint for host ${hc.name}`, { hostId: hc.name });
      const client = await HostClient.connect({
        hostId: hc.name,
        address: ep.address,
        port: ep.port,
        user: ep.user,
        privateKey: await keyOf(ep.keyPath),
        ...(ep.agentModule === undefined ? {} : { agentModule: ep.agentModule }),
        env: {
          TMPDIR: join(ep.dir, "tmp"),
          ...(process.env.VPC_LOG ? { VPC_LOG: process.env.VPC_LOG } : {}),
        },
        logFile: join(ep.logDir, "agent.log"),
        logger: this.#log,
        ...(ep.hostKey === undefined ? {} : { hostKey: ep.hostKey }),
        ...(ep.wrapCommand === undefined ? {} : { wrapCommand: ep.wrapCommand }),
      });
      this.#hosts.push(client);
      const { tunnel } = await client.call<{ tunnel: { host: string; port: number } }>(
        "init",
        {
          hostId: hc.name,
          hostDir: ep.dir,
          secret,
          listenIp: ep.address,
          engine: this.#engine,
          fsync: this.config.fsync,
          ...(ep.imageDir !== undefined
            ? { image: ep.imageDir }
            : this.#o.image === undefined
              ? {}
              : { image: this.#o.image }),
        },
        30_000,
      );
      tunnels.push(tunnel);
    }
    // Full mesh: host i dials every host after it.
    await Promise.all(
      this.#hosts.map((h, i) => h.call("connectTunnels", { peers: tunnels.slice(i + 1) }, 30_000)),
    );
  }

  #specs(hostIndex: number): AgentVmSpec[] {
    const all = clusterVms(this.config);
    const hosts = Object.fromEntries(all.map((v) => [v.name, v.dataIp.split("/")[0]!]));
    return this.config.hosts[hostIndex]!.vms.map((v) => ({
      name: v.name,
      memMiB: v.memMiB,
      cpus: v.cpus,
      dataIp: v.dataIp,
      hosts,
      // The VM's own limit ends first, so the agent reports a BootError with the serial tail
      // instead of the call timing out silently (an L2 in a qemu host boots for minutes).
      bootTimeoutMs: Math.max(30_000, this.#bootTimeout() - 10_000),
    }));
  }

  #hostOf(vmId: string): HostClient {
    const i = this.config.hosts.findIndex((h) => h.vms.some((v) => v.name === vmId));
    if (i < 0) throw new ClusterError("CLUSTER_CONFIG", `no VM ${vmId} in the cluster`);
    return this.#hosts[i]!;
  }

  exec(vmId: string, command: string, timeoutMs = 60_000): Promise<ExecResult> {
    return this.#hostOf(vmId).call<ExecResult>("exec", { vmId, command, timeoutMs }, timeoutMs + 5000);
  }

  /** Committed epochs of the cluster manifest, oldest first. */
  async committedEpochs(): Promise<number[]> {
    const names = await readdir(join(this.controllerDir, "epochs")).catch(() => [] as string[]);
    return names
      .map((n) => /^(\d+)\.json$/.exec(n)?.[1])
      .filter((n): n is string => n !== undefined)
      .map(Number)
      .sort((a, b) => a - b);
  }

  /**
   * The epoch a restore uses: `wanted` if its manifest checks out and names exactly the VMs of the
   * config, else an error; without `wanted`, the newest such epoch, with the newer ones passed
   * over and why (also reported as progress).
   */
  async #restorableEpoch(
    wanted: number | undefined,
  ): Promise<{ epoch: number; skipped: { epoch: number; reason: string }[] }> {
    const committed = await this.committedEpochs();
    const candidates = wanted === undefined ? [...committed].reverse() : [wanted];
    if (candidates.length === 0 || (wanted !== undefined && !committed.includes(wanted)))
      throw new ClusterError(
        "RESTORE_FAILED",
        `no committed epoch ${wanted ?? ""} in ${this.controllerDir}`,
        {
          epoch: wanted,
        },
      );
    const skipped: { epoch: number; reason: string }[] = [];
    for (const e of candidates) {
      try {
        await this.#readManifest(e);
        return { epoch: e, skipped };
      } catch (err) {
        if (wanted !== undefined) throw err;
        const reason = (err as Error).message;
        skipped.push({ epoch: e, reason });
        this.#progress(`skipping epoch ${e}: ${reason}`);
      }
    }
    throw new ClusterError(
      "RESTORE_FAILED",
      `no committed epoch in ${this.controllerDir} passes its check: ${skipped.map((s) => s.reason).join("; ")}`,
    );
  }

  async #readManifest(epoch: number): Promise<ClusterManifest> {
    const path = join(this.controllerDir, "epochs", `${epoch}.json`);
    const m = decodeClusterManifest(await readFile(path, "utf8"), path, epoch);
    const inManifest = m.hosts.flatMap((h) => h.vms).sort();
    const inConfig = clusterVms(this.config)
      .map((v) => v.name)
      .sort();
    if (inManifest.join(",") !== inConfig.join(","))
      throw new ClusterError(
        "RESTORE_FAILED",
        `cluster manifest ${path}: VMs ${inManifest.join(", ")}, but the cluster has ${inConfig.join(", ")}`,
        { epoch },
      );
    return m;
  }

  async #commit(epoch: number, reports: readonly HostEpochReport[]): Promise<void> {
    const dir = join(this.controllerDir, "epochs");
    const path = join(dir, `${epoch}.json`);
    const text = encodeClusterManifest({
      format: CLUSTER_MANIFEST_FORMAT,
      epoch,
      engine: this.#engine,
      hosts: reports.map((r) => ({ hostId: r.hostId, vms: r.vms.map((v) => v.vmId) })),
      committedAt: new Date().toISOString(),
    });
    await writeFileDurable(path, text, { mode: 0o600 });
  }

  /** One global checkpoint; resolves with its metrics, rejects with `EpochAbortedError`. */
  async checkpoint(): Promise<EpochMetrics> {
    const epoch = this.#nextEpoch++;
    const t0 = performance.now();
    const timeoutMs = this.config.epochTimeoutMs;
    try {
      const decision = await runGlobalEpoch(
        this.#hosts.map((h) => ({
          id: h.hostId,
          prepare: (e: number) =>
            h.call<HostEpochReport>("checkpoint", { epoch: e, channelLogTimeoutMs: timeoutMs }, timeoutMs),
        })),
        epoch,
        { timeoutMs, commit: (d) => this.#commit(d.epoch, d.reports) },
      );
      const m = epochMetrics(decision.reports, performance.now() - t0);
      this.metrics.push(m);
      await appendFile(join(this.controllerDir, "metrics.jsonl"), `${JSON.stringify({ ok: true, ...m })}\n`);
      return m;
    } catch (e) {
      this.aborted.push({ epoch, reason: (e as Error).message });
      await appendFile(
        join(this.controllerDir, "metrics.jsonl"),
        `${JSON.stringify({ ok: false, epoch, error: (e as Error).message })}\n`,
      );
      throw e;
    }
  }

  /** Takes a global checkpoint every `config.intervalMs` (start to start) until `stopCheckpoints`. */
  startCheckpoints(onEpoch?: (m: EpochMetrics | Error) => void): void {
    if (this.#loop) return;
    const loop: { stop: boolean; done: Promise<void>; wake: () => void } = {
      stop: false,
      done: Promise.resolve(),
      wake: () => undefined,
    };
    loop.done = (async () => {
      while (!loop.stop) {
        const t0 = performance.now();
        try {
          onEpoch?.(await this.checkpoint());
        } catch (e) {
          onEpoch?.(e as Error);
        }
        const wait = this.config.intervalMs - (performance.now() - t0);
        if (wait > 0 && !loop.stop)
          await new Promise<void>((r) => {
            const t = setTimeout(r, wait);
            loop.wake = () => {
              clearTimeout(t);
              r();
            };
          });
      }
    })();
    this.#loop = loop;
  }

  async stopCheckpoints(): Promise<void> {
    const loop = this.#loop;
    if (!loop) return;
    loop.stop = true;
    loop.wake();
    await loop.done;
    this.#loop = undefined;
  }

  /** The whole cluster fails: every QEMU is SIGKILLed and every agent connection dropped. */
  async kill(): Promise<void> {
    if (this.#loop) this.#loop.stop = true;
    await Promise.all(this.#hosts.map((h) => h.call("killVms", null, 30_000).catch(() => undefined)));
    await Promise.all(this.#hosts.map((h) => h.call("exit", null, 5_000).catch(() => undefined)));
    // The channel closes once the agent process is gone (and with it its store lock).
    await Promise.all(this.#hosts.map((h) => exitedWithin(h.exited, 10_000)));
    for (const h of this.#hosts) h.abort();
    await this.#loop?.done.catch(() => undefined);
    this.#loop = undefined;
    this.#hosts = [];
  }

  /** Stops checkpoints, shuts every VM down and ends the agents. */
  async close(): Promise<void> {
    await this.stopCheckpoints().catch(() => undefined);
    await Promise.all(
      this.#hosts.map(async (h) => {
        await h.call("shutdown", null, 60_000).catch(() => undefined);
        await h.close();
      }),
    );
    this.#hosts = [];
  }
}
