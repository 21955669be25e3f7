/**
 * The testbed daemon: the controller that keeps a testbed's VMs alive after `vpc testbed up`
 * returns. A host agent stops its VMs when its SSH channel to the controller ends, and a qemu
 * host lives as long as the process that made it, so one long-lived process per testbed makes
 * the hosts (`ensureConfigHosts`), boots the cluster (`Cluster.start`) and then serves the
 * control socket (control-socket.ts) for `status`, `run`, `checkpoint`, `kill`, `restore`,
 * `exec` and `shutdown`. Cluster operations (checkpoint, kill, restore) run one at a time;
 * `exec` and `status` run beside them.
 *
 * On a failed start it removes the hosts it made (keeping the run directory with its log for
 * `up` to show) and exits 1. After `shutdown`, or when `signal` aborts (the CLI aborts it on
 * SIGTERM, SIGINT and SIGHUP), it stops the VMs and their agents and exits 0; the hosts stay for
 * `down` to remove (by the state in the run directory, as after a crash).
 */
import { chmodSync, existsSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { availableParallelism } from "node:os";
import type { EpochMetrics } from "@vpc/cluster";
import {
  Cluster,
  type ClusterConfig,
  ClusterError,
  clusterVms,
  OUT,
  oversubscription,
  RpcPeer,
  resultBlocks,
  runProgress,
  runVerdict,
  workloadCommand,
} from "@vpc/cluster";
import type { ExecResult } from "@vpc/controller";
import { ControllerError } from "@vpc/controller";
import { ensureConfigHosts } from "./config-hosts.js";
import {
  type ControlRequest,
  controlSocketPath,
  type DaemonPhase,
  type DaemonStatus,
  type DaemonVmState,
  type RestoreReport,
  type RunResult,
  validateControlRequest,
} from "./control-socket.js";
import { TestbedError } from "./errors.js";
import { clusterHosts, testbedDown } from "./hosts.js";
import { readTestbedState } from "./state.js";

export interface TestbedDaemonOptions {
  readonly config: ClusterConfig;
  readonly runDir: string;
  /** Guest image directory (default: the agents' default). */
  readonly image?: string;
  /** Progress lines (the daemon's stdout is its log file). */
  readonly log: (line: string) => void;
  /** How long mpiexec may take to exit after the last result block (default 30 000 ms). */
  readonly finalizeGraceMs?: number;
  /** Aborted: shut down as `down` asks (VMs stopped, hosts kept); its reason is logged (e.g. "SIGTERM"). */
  readonly signal?: AbortSignal;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Kills what an earlier run left in a guest (an MPI_Finalize hang leaves mpiexec and ranks). The
 *  bracketed first letters keep the pattern from matching the shell that runs it. */
const REAP_WORKLOAD = "pkill -9 -f '[m]piexec|[h]ydra_pmi_proxy|/opt/npb/[b]in/'; true";

/** One line per committed epoch (ARCHITECTURE §2 names). */
export function formatEpochLine(m: EpochMetrics): string {
  const solo = Object.values(m.soloDowntimeMs);
  return (
    `epoch ${m.epoch} committed (${m.full ? "full" : "incremental"}): VC downtime ${m.vcDowntimeMs.toFixed(1)} ms, ` +
    `solo VM downtime max ${Math.max(...solo).toFixed(1)} ms, ${(m.checkpointBytes / 1e6).toFixed(1)} MB, ` +
    `held ${m.heldFrames} / logged ${m.loggedFrames} frames, commit ${m.commitMs.toFixed(0)} ms`
  );
}

interface ActiveRun {
  readonly workload: string;
  readonly startedAt: string;
  readonly checkpointEveryMs?: number;
  readonly repeat: number;
  readonly restoredFrom: { epoch: number; computing: boolean }[];
  cancelled: string | undefined;
}

class TestbedDaemon {
  readonly #o: TestbedDaemonOptions;
  readonly #t0 = performance.now();
  readonly #startedAt = new Date().toISOString();
  readonly #progress: string[] = [];
  readonly #peers = new Set<RpcPeer>();
  #phase: DaemonPhase = "starting";
  #vmState: DaemonVmState = "booting";
  #cluster: Cluster | undefined;
  #restoredFrom: number | undefined;
  #run: ActiveRun | undefined;
  /** The connection that asked for the run: when it goes, the run is cancelled. */
  #runPeer: RpcPeer | undefined;
  #ops: Promise<unknown> = Promise.resolve();
  #server: Server | undefined;
  #closed = false;
  #stopped!: (code: number) => void;
  readonly stopped = new Promise<number>((r) => {
    this.#stopped = r;
  });

  constructor(o: TestbedDaemonOptions) {
    this.#o = o;
  }

  say(line: string): void {
    const stamped = `[${((performance.now() - this.#t0) / 1000).toFixed(1).padStart(6)} s] ${line}`;
    this.#o.log(stamped);
    this.#progress.push(line);
    if (this.#progress.length > 20) this.#progress.shift();
    for (const p of this.#peers) p.emit("progress", { line });
  }

  /** Serves the control socket from the start, so `status` answers while the cluster boots. */
  async listen(): Promise<void> {
    const path = controlSocketPath(this.#o.runDir);
    // A socket file left by a killed daemon would make listen fail with EADDRINUSE.
    if (existsSync(path)) rmSync(path, { force: true });
    const server = createServer((sock) => {
      let peer: RpcPeer | undefined;
      peer = new RpcPeer(sock, sock, {
        idPrefix: "d#",
        peerId: "cli",
        handler: (method, params) => this.#handle(method, params, peer!),
      });
      const p = peer;
      this.#peers.add(p);
      sock.on("error", () => p.close());
      void p.closed.then(() => {
        this.#peers.delete(p);
        if (this.#run && this.#runPeer === p) this.#run.cancelled = "the vpc testbed run command went away";
      });
    });
    // Only root may connect: the socket is made with no permissions for group and others.
    const umask = process.umask(0o177);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(path, () => resolve());
      });
    } finally {
      process.umask(umask);
    }
    chmodSync(path, 0o600);
    this.#server = server;
  }

  async start(): Promise<void> {
    const { config, runDir } = this.#o;
    this.say(`testbed ${config.name}: ${config.hosts.length} hosts on ${config.fabric.prefix}`);
    const up = await ensureConfigHosts(config, runDir);
    if (up.status.state !== "up")
      throw new TestbedError("TESTBED_STATE", `hosts not healthy: ${up.status.problems.join("; ")}`);
    this.say(`hosts up: ${up.status.hosts.map((h) => `${h.name} ${h.ip}`).join(", ")}`);
    this.#cluster = await Cluster.start(this.#clusterOptions(await readTestbedState(runDir)));
    this.#vmState = "running";
    this.#phase = "ready";
    this.say(`ready: ${clusterVms(config).length} VMs running`);
  }

  #clusterOptions(testbed: Awaited<ReturnType<typeof readTestbedState>>) {
    return {
      config: this.#o.config,
      ...clusterHosts(testbed),
      onProgress: (l: string) => this.say(l),
      ...(this.#o.image === undefined ? {} : { image: this.#o.image }),
    };
  }

  /** After a failed start: the VMs and hosts go, the run directory (with the log) stays. */
  async abandon(e: unknown): Promise<void> {
    const code =
      TestbedError.isInstance(e) || ClusterError.isInstance(e) || ControllerError.isInstance(e)
        ? ` [${e.code}]`
        : "";
    this.say(`error${code}: ${e instanceof Error ? e.message : String(e)}`);
    await this.#cluster?.close().catch(() => undefined);
    if (existsSync(`${this.#o.runDir}/testbed.json`))
      await testbedDown(this.#o.runDir, { keepRunDir: true }).catch((x: unknown) =>
        this.say(`removing the hosts failed: ${(x as Error).message}`),
      );
    this.#close(1);
  }

  #close(code: number): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const p of this.#peers) p.close();
    this.#server?.close();
    rmSync(controlSocketPath(this.#o.runDir), { force: true });
    this.#stopped(code);
  }

  async #handle(method: string, params: unknown, peer: RpcPeer): Promise<unknown> {
    const req = validateControlRequest(method, params);
    if (req.method === "status") return this.#status();
    if (req.method === "shutdown") return this.shutdown("asked by vpc testbed down");
    if (this.#phase !== "ready")
      throw new TestbedError("TESTBED_STATE", `the testbed is ${this.#phase}: try again when it is ready`);
    switch (req.method) {
      case "checkpoint":
        return this.#exclusive(() => this.#checkpoint());
      case "kill":
        return this.#exclusive(() => this.#kill());
      case "restore":
        return this.#exclusive(() => this.#restore(req.epoch));
      case "exec":
        return this.#exec(req.vm, req.command, req.timeoutMs);
      case "run":
        return this.#runWorkload(req, peer);
    }
  }

  /** Cluster operations one at a time (a checkpoint during a restore would see half a cluster). */
  #exclusive<T>(f: () => Promise<T>): Promise<T> {
    const next = this.#ops.then(f, f);
    this.#ops = next.catch(() => undefined);
    return next;
  }

  #requireRunning(what: string): Cluster {
    if (this.#vmState !== "running" || this.#cluster === undefined)
      throw new TestbedError(
        "TESTBED_STATE",
        `${what}: the VMs are ${this.#vmState}${this.#vmState === "killed" ? " (vpc testbed restore brings them back)" : ""}`,
      );
    return this.#cluster;
  }

  async #status(): Promise<DaemonStatus> {
    const c = this.#cluster;
    const probes = new Map<string, string>();
    if (this.#vmState === "running" && c)
      await Promise.all(
        clusterVms(this.#o.config).map(async (v) => {
          // Twice: one SSH connection lost to a loaded machine is not a VM that is gone.
          for (let attempt = 0; attempt < 2; attempt++) {
            try {
              const r = await c.exec(v.name, "true", 15_000);
              if (r.exitCode === 0) {
                probes.delete(v.name);
                return;
              }
              probes.set(v.name, `probe exited with ${r.exitCode ?? r.signal}`);
            } catch (e) {
              probes.set(v.name, (e as Error).message);
            }
          }
        }),
      );
    return {
      pid: process.pid,
      phase: this.#phase,
      startedAt: this.#startedAt,
      vms: clusterVms(this.#o.config).map((v) => {
        const problem = probes.get(v.name);
        return {
          name: v.name,
          host: v.hostId,
          dataIp: v.dataIp,
          state: problem === undefined ? this.#vmState : "not answering",
          ...(problem === undefined ? {} : { problem }),
        };
      }),
      committedEpochs: c ? await c.committedEpochs() : [],
      ...(this.#restoredFrom === undefined ? {} : { restoredFrom: this.#restoredFrom }),
      ...(this.#run
        ? {
            run: {
              workload: this.#run.workload,
              startedAt: this.#run.startedAt,
              ...(this.#run.checkpointEveryMs === undefined
                ? {}
                : { checkpointEveryMs: this.#run.checkpointEveryMs }),
            },
          }
        : {}),
      progress: [...this.#progress],
    };
  }

  async #checkpoint(): Promise<EpochMetrics> {
    const m = await this.#requireRunning("checkpoint").checkpoint();
    this.say(formatEpochLine(m));
    return m;
  }

  async #kill(): Promise<{ vms: string[] }> {
    const c = this.#requireRunning("kill");
    this.#vmState = "killed";
    this.say("kill: SIGKILL every QEMU, drop every host agent");
    await c.kill();
    this.say("killed: the VMs are gone (vpc testbed restore brings them back)");
    return { vms: clusterVms(this.#o.config).map((v) => v.name) };
  }

  async #restore(epoch: number | undefined): Promise<RestoreReport> {
    const c = this.#cluster;
    if (c === undefined) throw new TestbedError("TESTBED_STATE", "restore: no cluster");
    const committed = await c.committedEpochs();
    const target = epoch ?? committed.at(-1);
    if (target === undefined || !committed.includes(target))
      throw new TestbedError(
        "TESTBED_STATE",
        target === undefined
          ? "restore: no committed epoch yet (vpc testbed checkpoint takes one)"
          : `restore: epoch ${target} is not committed (committed: ${committed.join(", ")})`,
      );
    const killedFirst = this.#vmState === "running";
    if (killedFirst) await this.#kill();
    this.#vmState = "restoring";
    try {
      const { cluster, result } = await Cluster.restore({
        ...this.#clusterOptions(await readTestbedState(this.#o.runDir)),
        epoch: target,
      });
      this.#cluster = cluster;
      this.#vmState = "running";
      this.#restoredFrom = target;
      const run = this.#run;
      if (run) {
        const first = clusterVms(this.#o.config)[0]!.name;
        const out = await cluster
          .exec(first, `cat ${OUT} 2>/dev/null || true`, 30_000)
          .catch(() => undefined);
        run.restoredFrom.push({
          epoch: target,
          computing: out !== undefined && resultBlocks(out.stdout).length < run.repeat,
        });
      }
      this.say(
        `restored epoch ${target} in ${(result.totalMs / 1000).toFixed(2)} s (${result.vms.reduce((a, v) => a + v.replayed, 0)} channel-log frames replayed)`,
      );
      return { ...result, killedFirst };
    } catch (e) {
      this.#vmState = "killed";
      throw e;
    }
  }

  #exec(vm: string, command: string, timeoutMs = 60_000): Promise<ExecResult> {
    if (!clusterVms(this.#o.config).some((v) => v.name === vm))
      throw new TestbedError("TESTBED_REQUEST", `no VM ${vm} in testbed ${this.#o.config.name}`);
    return this.#requireRunning("exec").exec(vm, command, timeoutMs);
  }

  async #runWorkload(req: ControlRequest & { method: "run" }, peer: RpcPeer): Promise<RunResult> {
    if (this.#run)
      throw new TestbedError(
        "TESTBED_STATE",
        `run: ${this.#run.workload} is already running (since ${this.#run.startedAt})`,
      );
    const c0 = this.#requireRunning("run");
    const { config } = this.#o;
    const workload = {
      ...config.workload,
      ...(req.kernel === undefined ? {} : { kernel: req.kernel }),
      ...(req.class === undefined ? {} : { class: req.class }),
      ...(req.np === undefined ? {} : { np: req.np }),
    };
    const label = `${workload.kernel.toUpperCase()}.${workload.class} -n ${workload.np}`;
    const vms = clusterVms(config).map((v) => v.name);
    const run: ActiveRun = {
      workload: label,
      startedAt: new Date().toISOString(),
      ...(req.checkpointEveryMs === undefined ? {} : { checkpointEveryMs: req.checkpointEveryMs }),
      repeat: workload.repeat,
      restoredFrom: [],
      cancelled: undefined,
    };
    this.#run = run;
    this.#runPeer = peer;
    const t0 = performance.now();
    const deadline = Date.now() + (req.timeoutMs ?? 600_000);
    const epochs: EpochMetrics[] = [];
    let aborted = 0;
    let stopLoop = false;
    let loop: Promise<void> = Promise.resolve();
    let finished = false;
    try {
      await Promise.all(vms.map((v) => c0.exec(v, REAP_WORKLOAD, 30_000)));
      this.say(`run: ${label} across ${vms.join(", ")}`);
      const crowded = oversubscription(config, workload.np, availableParallelism());
      if (crowded !== undefined) this.say(`run: warning: ${crowded}`);
      await c0.exec(vms[0]!, workloadCommand({ ...config, workload }), 30_000);
      const every = req.checkpointEveryMs;
      if (every !== undefined)
        loop = (async () => {
          while (!stopLoop) {
            const t = performance.now();
            if (this.#vmState === "running")
              try {
                epochs.push(await this.#exclusive(() => this.#checkpoint()));
              } catch (e) {
                aborted++;
                this.say(`checkpoint failed: ${(e as Error).message}`);
              }
            while (!stopLoop && performance.now() - t < every) await sleep(Math.min(100, every));
          }
        })();
      let out = "";
      let allPrintedAt: number | undefined;
      let started = false;
      let failures = 0;
      for (;;) {
        if (run.cancelled) throw new TestbedError("TESTBED_STATE", `run cancelled: ${run.cancelled}`);
        if (this.#phase !== "ready") throw new TestbedError("TESTBED_STATE", "run: the testbed is stopping");
        if (Date.now() > deadline)
          throw new TestbedError(
            "TESTBED_STATE",
            `run: ${label} did not finish within ${((req.timeoutMs ?? 600_000) / 1000).toFixed(0)} s; output so far:\n${out}`,
          );
        await sleep(1000);
        const c = this.#cluster;
        if (this.#vmState !== "running" || c === undefined) continue;
        try {
          out = (await c.exec(vms[0]!, `cat ${OUT} 2>/dev/null || true`, 30_000)).stdout;
          failures = 0;
        } catch (e) {
          // A kill between the state check and the read is expected; anything else three times is not.
          if (this.#vmState === "running" && ++failures >= 3) throw e;
          continue;
        }
        const p = runProgress(
          out,
          workload.repeat,
          Date.now(),
          this.#o.finalizeGraceMs ?? 30_000,
          allPrintedAt,
        );
        if (p.started && !started) this.say(`run: ${label} is computing (every rank is up)`);
        started = p.started;
        allPrintedAt = p.allPrintedAt;
        if (!p.done) continue;
        stopLoop = true;
        await loop;
        if (p.finalizeHang) {
          this.say(
            "run: every result is printed but mpiexec did not exit: MPI_Finalize hang of MPICH 4.0.2 (docs/cluster.md); its processes are killed",
          );
          await Promise.all(vms.map((v) => c.exec(v, REAP_WORKLOAD, 30_000).catch(() => undefined)));
        }
        finished = true;
        const v = runVerdict(out, workload.repeat, p.finalizeHang);
        this.say(`run: ${label} ${v.verified ? "verified" : "NOT verified"}`);
        return {
          workload: label,
          ...v,
          finalizeHang: p.finalizeHang,
          wallMs: performance.now() - t0,
          epochs,
          abortedEpochs: aborted,
          restoredFrom: [...run.restoredFrom],
          output: out,
        };
      }
    } catch (e) {
      this.say(`run: ${label} failed: ${(e as Error).message.split("\n")[0]}`);
      throw e;
    } finally {
      stopLoop = true;
      await loop;
      // A cancelled or failed run must not leave ranks computing in the guests.
      const c = this.#cluster;
      if (!finished && this.#vmState === "running" && c)
        await Promise.all(vms.map((v) => c.exec(v, REAP_WORKLOAD, 30_000).catch(() => undefined)));
      this.#run = undefined;
      this.#runPeer = undefined;
    }
  }

  async shutdown(why: string): Promise<{ ok: true }> {
    if (this.#phase !== "stopping") {
      this.#phase = "stopping";
      this.say(`shutdown (${why}): stopping the VMs`);
      // Not queued behind other operations: `down` must work even when one of them hangs.
      await this.#cluster
        ?.close()
        .catch((e: unknown) => this.say(`closing the cluster: ${(e as Error).message}`));
      this.say("shutdown: done");
      // Let the reply go out before the socket closes.
      setTimeout(() => this.#close(0), 50);
    }
    return { ok: true };
  }
}

/**
 * Runs the daemon of the testbed of `config` in `runDir` until `shutdown`; resolves with the exit
 * status (1 when the start failed — the log then ends with the error).
 */
export async function runTestbedDaemon(o: TestbedDaemonOptions): Promise<number> {
  const d = new TestbedDaemon(o);
  await d.listen();
  const { signal } = o;
  const onSignal = (): void => {
    const why = typeof signal?.reason === "string" ? signal.reason : "signal";
    void d.shutdown(`${why}; the hosts stay for vpc testbed down`);
  };
  if (signal?.aborted) onSignal();
  else signal?.addEventListener("abort", onSignal, { once: true });
  // A shutdown while the VMs boot ends the daemon at once (down removes what the boot left).
  await Promise.race([d.start().catch((e: unknown) => d.abandon(e)), d.stopped]);
  return d.stopped;
}
