/**
 * The host agent: one per host, started by the controller over SSH, serving the controller's RPC
 * on its stdin/stdout. It holds the VMs of its host (each with the dirty-log agent preloaded),
 * their checkpoint engines, the host's vnet switch (VMs attach over `-netdev stream` unix
 * sockets; tunnels to the other hosts' switches over the fabric, authenticated with the cluster
 * secret) and the host's local checkpoint store.
 *
 * Durability on a host: the engines commit each VM part with the VM's channel log of the epoch
 * inside it (covered by the part's hashes and commit), then the agent commits the epoch in its
 * local store for the VMs whose parts are durable. That is the host's "prepared" vote, with the
 * frames its switch dropped while the cut formed (the coordinator aborts the epoch if any); the
 * cluster-wide commit point is the controller's manifest (docs/cluster.md).
 */
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { CheckpointMetrics, Logger, Vm } from "@vpc/controller";
import {
  type AgentVm,
  type ClosableEngine,
  ControllerError,
  createEngine,
  type EngineSpec,
  parseEngineSpec,
  restoreVmWithAgent,
  startVmWithAgent,
} from "@vpc/controller";
import { CheckpointStore } from "@vpc/storage";
import { type DropCounters, decodeChannelLog, VnetSwitch } from "@vpc/vnet";
import type { HostEpochReport, VmEpochReport } from "../coordinator.js";
import { ClusterError } from "../errors.js";

/** Wall-clock milliseconds with sub-ms resolution (hosts of one machine share this clock). */
const wallMs = (): number => performance.timeOrigin + performance.now();

export interface AgentInitParams {
  readonly hostId: string;
  /** The host's private directory: store, vnet sockets. */
  readonly hostDir: string;
  readonly secret: string;
  /** Fabric address the switch's tunnel listener binds to. */
  readonly listenIp: string;
  /** The engine spec as `formatEngineSpec` writes it (the RPC is JSON); parsed once, by `init`. */
  readonly engine: string;
  readonly fsync: boolean;
  readonly image?: string;
}

export interface AgentVmSpec {
  readonly name: string;
  readonly memMiB: number;
  readonly cpus: number;
  readonly dataIp: string;
  /** name → address of every VM of the cluster (the guest's /etc/hosts). */
  readonly hosts: Readonly<Record<string, string>>;
  /** Ready marker and SSH within this (default the Vm's); L2 guests in a qemu host need minutes. */
  readonly bootTimeoutMs?: number;
}

interface HostedVm {
  readonly spec: AgentVmSpec;
  avm: AgentVm;
  engine: ClosableEngine;
  /** Stamps of the checkpoint in progress (set by the pause/resume hooks). */
  stamps: { pausedAt: number; resumedAt: number };
  /** The cut's cost around QMP stop in the last pause (ms): waiting for QEMU to read, stop, draining. */
  cutSteps: { cutBeforeStopMs: number; qmpStopMs: number; cutAfterStopMs: number };
  lastCounters: { held: number; logged: number };
  epoch: number;
  /** Frames in the channel log stored with the checkpoint in progress. */
  channelLogFrames: number;
}

export class HostAgent {
  readonly #log: Logger;
  #p: AgentInitParams | undefined;
  /** `#p.engine`, parsed. */
  #engine: EngineSpec | undefined;
  #store: CheckpointStore | undefined;
  #switch: VnetSwitch | undefined;
  readonly #vms = new Map<string, HostedVm>();
  /** How long a checkpoint waits for its channel logs (the epoch timeout of the call). */
  #channelLogTimeoutMs = 30_000;
  /** Switch drops at the end of the previous checkpoint (the epoch's drops are the difference). */
  #dropsAtLastEpoch: DropCounters | undefined;

  constructor(logger: Logger) {
    this.#log = logger;
  }

  /** RPC dispatch. */
  async handle(method: string, params: unknown): Promise<unknown> {
    const p = (params ?? {}) as Record<string, unknown>;
    switch (method) {
      case "init":
        return this.init(p as unknown as AgentInitParams);
      case "connectTunnels":
        return this.connectTunnels(p.peers as { host: string; port: number }[]);
      case "startVms":
        return this.startVms(p.vms as AgentVmSpec[]);
      case "exec":
        return this.#exec(
          String(p.vmId),
          String(p.command),
          typeof p.timeoutMs === "number" ? p.timeoutMs : 60_000,
        );
      case "checkpoint":
        return this.checkpoint(Number(p.epoch), Number(p.channelLogTimeoutMs ?? 30_000));
      case "restore":
        return this.restore(Number(p.epoch), p.vms as AgentVmSpec[]);
      case "newestLocalEpoch":
        return (await this.#requireStore().listEpochs()).at(-1) ?? -1;
      case "killVms":
        return this.killVms();
      case "stats":
        return this.#requireSwitch().stats();
      case "shutdown":
        return this.shutdown();
      default:
        throw new ClusterError("RPC_REMOTE", `unknown method ${method}`);
    }
  }

  async init(params: AgentInitParams): Promise<{ tunnel: { host: string; port: number } }> {
    if (this.#p)
      throw new ClusterError("CLUSTER_STATE", "agent already initialised", { hostId: params.hostId });
    this.#engine = parseEngineSpec(params.engine);
    this.#p = params;
    await mkdir(join(params.hostDir, "vnet"), { recursive: true, mode: 0o700 });
    this.#store = await CheckpointStore.open(join(params.hostDir, "store"), {
      create: true,
      fsync: params.fsync,
    });
    this.#switch = new VnetSwitch({ switchId: params.hostId, secret: params.secret });
    this.#dropsAtLastEpoch = this.#switch.drops();
    const tunnel = await this.#switch.listen({ host: params.listenIp, port: 0 });
    return { tunnel };
  }

  async connectTunnels(peers: readonly { host: string; port: number }[]): Promise<string[]> {
    const sw = this.#requireSwitch();
    return Promise.all(peers.map((p) => sw.connectTunnel({ host: p.host, port: p.port })));
  }

  /** A command in the guest; waits out a checkpoint pause instead of failing on it. */
  async #exec(vmId: string, command: string, timeoutMs: number) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const vm = this.#vm(vmId).avm.vm;
      try {
        if (vm.state !== "paused") return await vm.exec(command, { timeoutMs });
      } catch (e) {
        if (!(ControllerError.isInstance(e) && e.code === "VM_STATE")) throw e;
      }
      if (Date.now() > deadline)
        throw new ClusterError("CLUSTER_STATE", `${vmId} stayed paused for ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  #portPath(vmId: string): string {
    return join(this.#requireParams().hostDir, "vnet", `${vmId}.sock`);
  }

  #vmOptions(spec: AgentVmSpec) {
    const image = this.#requireParams().image;
    return {
      name: spec.name,
      memMiB: spec.memMiB,
      cpus: spec.cpus,
      ...(image === undefined ? {} : { image }),
      logger: this.#log,
      guest: { hostname: spec.name, ip: spec.dataIp, hosts: spec.hosts },
      ...(spec.bootTimeoutMs === undefined ? {} : { bootTimeoutMs: spec.bootTimeoutMs }),
      dataNics: [`stream,id=data0,server=off,addr.type=unix,addr.path=${this.#portPath(spec.name)}`],
    };
  }

  async startVms(specs: readonly AgentVmSpec[]): Promise<{ vmId: string; bootMs: number }[]> {
    const sw = this.#requireSwitch();
    for (const s of specs) await sw.addPort({ id: s.name, path: this.#portPath(s.name), epoch: -1 });
    return Promise.all(
      specs.map(async (s) => {
        const t0 = performance.now();
        const avm = await startVmWithAgent(this.#vmOptions(s));
        this.#host(s, avm, -1);
        return { vmId: s.name, bootMs: performance.now() - t0 };
      }),
    );
  }

  #host(spec: AgentVmSpec, avm: AgentVm, epoch: number): void {
    const hv: HostedVm = {
      spec,
      avm,
      engine: undefined as unknown as ClosableEngine,
      stamps: { pausedAt: 0, resumedAt: 0 },
      cutSteps: { cutBeforeStopMs: 0, qmpStopMs: 0, cutAfterStopMs: 0 },
      lastCounters: { held: 0, logged: 0 },
      epoch,
      channelLogFrames: 0,
    };
    const sw = this.#requireSwitch();
    const counters = sw.stats().ports.find((p) => p.id === spec.name)?.counters;
    hv.lastCounters = { held: counters?.heldFrames ?? 0, logged: counters?.loggedFrames ?? 0 };
    hv.engine = createEngine(this.#requireEngine(), {
      vm: this.#switchedVm(hv),
      store: this.#requireStore(),
      agent: avm.agent,
      commitGlobal: false,
      channelLog: async (e) => {
        const blob = await sw.channelLog(spec.name, e, { timeoutMs: this.#channelLogTimeoutMs });
        hv.channelLogFrames = decodeChannelLog(blob).records.length;
        return blob;
      },
      logger: this.#log,
    });
    this.#vms.set(spec.name, hv);
  }

  /**
   * The VM as its engine sees it: `pause()` goes through the switch so that stopping the VM and
   * flipping its port to the epoch are one step for forwarding; pause/resume are time-stamped.
   */
  #switchedVm(hv: HostedVm): Vm {
    const sw = this.#requireSwitch();
    return new Proxy(hv.avm.vm, {
      get: (target, prop) => {
        if (prop === "pause")
          return async () => {
            hv.stamps.pausedAt = wallMs();
            const t0 = performance.now();
            let ms = 0;
            let stopAt = t0;
            let stoppedAt = t0;
            await sw.beginCheckpoint(hv.spec.name, hv.epoch, async () => {
              stopAt = performance.now();
              ms = await target.pause();
              stoppedAt = performance.now();
            });
            hv.cutSteps = {
              cutBeforeStopMs: stopAt - t0,
              qmpStopMs: stoppedAt - stopAt,
              cutAfterStopMs: performance.now() - stoppedAt,
            };
            return ms;
          };
        if (prop === "resume")
          return async () => {
            const ms = await target.resume();
            hv.stamps.resumedAt = wallMs();
            return ms;
          };
        const v = Reflect.get(target, prop, target) as unknown;
        return typeof v === "function" ? v.bind(target) : v;
      },
    });
  }

  /** Phase 1 of global epoch `epoch` for every VM of this host; durable on return. */
  async checkpoint(epoch: number, channelLogTimeoutMs: number): Promise<HostEpochReport> {
    const t0 = performance.now();
    const sw = this.#requireSwitch();
    const store = this.#requireStore();
    const vms = [...this.#vms.values()];
    this.#channelLogTimeoutMs = channelLogTimeoutMs;
    const dropsAtStart = sw.drops();
    const results = await Promise.allSettled(
      vms.map(async (hv): Promise<VmEpochReport> => {
        hv.epoch = epoch;
        const m: CheckpointMetrics = await hv.engine.checkpoint(epoch);
        const c = sw.stats().ports.find((p) => p.id === hv.spec.name)!.counters;
        const held = c.heldFrames - hv.lastCounters.held;
        const logged = c.loggedFrames - hv.lastCounters.logged;
        hv.lastCounters = { held: c.heldFrames, logged: c.loggedFrames };
        return {
          vmId: hv.spec.name,
          pausedAt: hv.stamps.pausedAt,
          resumedAt: hv.stamps.resumedAt,
          pauseMs: m.pauseMs,
          soloDowntimeMs: m.soloDowntimeMs,
          full: m.full,
          checkpointBytes: m.checkpointBytes,
          durableMs: m.durableMs,
          heldFrames: held,
          loggedFrames: logged,
          channelLogFrames: hv.channelLogFrames,
          steps: { ...m.steps, ...hv.cutSteps },
        };
      }),
    );
    const ok = results.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
    // Commit locally what is durable even if a sibling failed: the engines have already confirmed
    // those pages to their agents, so the next increments must chain onto these parts.
    if (ok.length > 0)
      await store.commitGlobal(
        epoch,
        ok.map((v) => v.vmId),
      );
    const failed = results.flatMap((r, i) =>
      r.status === "rejected" ? [{ vm: vms[i]!.spec.name, e: r.reason }] : [],
    );
    if (failed.length > 0) {
      throw new ClusterError(
        "EPOCH_ABORTED",
        `epoch ${epoch}: ${failed.map((f) => `${f.vm}: ${(f.e as Error).message ?? String(f.e)}`).join("; ")}`,
        { hostId: this.#p?.hostId, epoch, cause: failed[0]!.e },
      );
    }
    const dropsAtEnd = sw.drops();
    const since = this.#dropsAtLastEpoch ?? dropsAtEnd;
    this.#dropsAtLastEpoch = dropsAtEnd;
    return {
      hostId: this.#requireParams().hostId,
      epoch,
      vms: ok,
      hostMs: performance.now() - t0,
      droppedFrames: dropsAtEnd.total - since.total,
      cutDrops: dropDifference(dropsAtEnd, dropsAtStart),
    };
  }

  /**
   * VC restore on this host: every port to `epoch`, each VM's channel log queued for replay, then
   * every VM restarted from `epoch` of the local store. The old VMs must be gone.
   */
  async restore(
    epoch: number,
    specs: readonly AgentVmSpec[],
  ): Promise<{ vmId: string; ms: number; replayed: number }[]> {
    const sw = this.#requireSwitch();
    const store = this.#requireStore();
    if (this.#vms.size > 0)
      throw new ClusterError("CLUSTER_STATE", "restore needs a host without running VMs");
    for (const s of specs) await sw.addPort({ id: s.name, path: this.#portPath(s.name), epoch });
    sw.reset(epoch);
    const replayed = new Map<string, number>();
    for (const s of specs) replayed.set(s.name, sw.replay(s.name, await store.readChannelLog(s.name, epoch)));
    const image = this.#requireParams().image;
    return Promise.all(
      specs.map(async (s) => {
        const t0 = performance.now();
        const avm = await restoreVmWithAgent({
          store,
          vmId: s.name,
          epoch,
          ...(image === undefined ? {} : { image }),
          logger: this.#log,
        });
        this.#host(s, avm, epoch);
        return { vmId: s.name, ms: performance.now() - t0, replayed: replayed.get(s.name) ?? 0 };
      }),
    );
  }

  /** SIGKILLs every VM of the host (a host failure, as far as the VMs are concerned). */
  async killVms(): Promise<void> {
    await Promise.all(
      [...this.#vms.values()].map(async (hv) => {
        await hv.avm.vm.kill();
        await hv.engine.close();
        await hv.avm.close().catch(() => undefined);
      }),
    );
    this.#vms.clear();
  }

  async shutdown(): Promise<void> {
    await Promise.all(
      [...this.#vms.values()].map(async (hv) => {
        await hv.engine.close();
        await hv.avm.close().catch(() => undefined);
      }),
    );
    this.#vms.clear();
    await this.#switch?.close();
    await this.#store?.close();
  }

  #vm(id: string): HostedVm {
    const hv = this.#vms.get(id);
    if (!hv) throw new ClusterError("CLUSTER_STATE", `no VM ${id} on this host`, { hostId: this.#p?.hostId });
    return hv;
  }

  #requireParams(): AgentInitParams {
    if (!this.#p) throw new ClusterError("CLUSTER_STATE", "agent not initialised (call init first)");
    return this.#p;
  }

  #requireEngine(): EngineSpec {
    this.#requireParams();
    return this.#engine!;
  }

  #requireStore(): CheckpointStore {
    this.#requireParams();
    return this.#store!;
  }

  #requireSwitch(): VnetSwitch {
    this.#requireParams();
    return this.#switch!;
  }
}

/** Drops between two readings of the switch's counters, by cause (only causes that rose). */
function dropDifference(now: DropCounters, before: DropCounters): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of Object.keys(now) as (keyof DropCounters)[]) {
    const d = now[k] - before[k];
    if (d > 0) out[k] = d;
  }
  return out;
}
